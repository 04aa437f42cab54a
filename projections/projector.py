"""The fold of the log into the read-model tables: a page of records and the tracking position
commit in one transaction (projections/runner.py follows the log with it; `engage rebuild` and
`engage replay` fold a whole log with it in bulk).

Identity links are retroactive and engagement does not depend on arrival order, so a page only
writes each event's row and marks the profiles it touched, with the first of their events it
folded; their spans are swept when the fold is caught up (projections/sweep.py): from that event
on when it sorts after the profile's history, else from the whole history. Case rules follow log
order.
"""
from __future__ import annotations

import contextlib
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from commands.cases import Case, apply
from commands.touchpoints import Touchpoint, case_id, from_wire
from projections import counts, sweep
from projections.advocacy import weight
from projections.directory import Directory, Link, Origin, customer_origin
from projections.engagement import RANK, rung_of
from projections.sla import TARGETS, minutes
from projections.spans import FULL, sort_key
from projections.store import (
    BEGINNING,
    BUSY_TIMEOUT_MS,
    DEFERRED_INDEXES,
    FOLD_INDEXES,
    SPAN_INDEXES,
    connect,
    create_indexes,
    drop_indexes,
    sortable,
    sortable_text,
)

NAME = "read-models"  # the tracking row's name
# Records folded per transaction, live and in bulk. Each page pays a COMMIT and the counts' upkeep:
# a live fold of 200,000 events took 7.5 s of CPU with 5,000 against 8.7 s with 1,000, and a live
# `engage up` over a 980k-event log reached position 300,000 in 8.8–8.9 s against 11.1 s.
# A full page folds in ~0.2 s, so read models that are behind still move several times a second;
# during a burst of HTTP ingest the two catch up alike (1.8–2.4 s after 100,000 inputs).
PAGE = 5000
# A sweep of at least this share of the profiles (and this many) builds the span indexes anew
# instead of updating them row by row (a live fold far behind, or the sweep after a burst):
# folding 200,000 events live, page after page with one sweep at the end, took 6.7–7.5 s of CPU
# against 7.9–8.2 s; after 100,000 inputs over HTTP the read models caught up 1.31–1.90 s after
# the burst against 1.82–2.34 s.
REINDEX_SHARE = 0.5
REINDEX_FROM = 1_000
_ABOVE = "\U0010ffff"  # above every sort key (they begin with a digit)
CASES_KEPT = 16_384  # cases kept in memory between pages, the most recently changed
KEYS_KEPT = 65_536  # profile keys remembered as written to `profiles` and to `dirty`
BULK_CACHE_KIB = 64 * 1024
DEFAULT_CACHE = -2000  # SQLite's own default (2 MiB), once a bulk fold is over
# 64 MiB of WAL between checkpoints (SQLite's default is 1,000 pages): a page rewritten batch after
# batch (an index, a profile's spans) reaches the database once per checkpoint, not once per 4 MiB.
# After a drain of 100,000 events the live read models caught up in 0.4–1.0 s instead of 1.7–1.9 s.
CHECKPOINT_PAGES = 16_384
# A WAL longer than this is checkpointed and truncated after a commit, waiting (the connection's
# busy timeout) for the readers of its frames to finish. SQLite's automatic checkpoint never waits,
# so when some reader always holds a snapshot (8 clients reading back to back, found by a probe)
# the WAL is never restarted and grew ~5 MiB/s under ingest: 2.8 GiB in 5 minutes. Readers that
# start meanwhile read the database file and do not hold the truncation up.
WAL_LIMIT = 2 * CHECKPOINT_PAGES * 4096
WAL_WAIT = 5.0

_case_encoder = msgspec.msgpack.Encoder()
_case_decoder = msgspec.msgpack.Decoder(Case)


class Logged(msgspec.Struct):
    """What the fold reads of a logged event; the full Touchpoint is built for case rules only."""

    id: str
    type: str
    occurred_at: str  # as the log writes it (commands/instants.py); `sortable_text` makes it sortable
    customer: str | None = None
    identity: dict[str, str] | None = None
    data: dict[str, Any] = {}


class Record(msgspec.Struct):
    position: int
    hash: str
    event: Logged


_record = msgspec.json.Decoder(Record)
_whole = msgspec.json.Decoder(dict[str, Any])


class Projector:
    """The fold of the log into the read-model tables (one writer, on the runner's thread).

    `bulk=True` is for a fold from the start of a large log, whose answers are partial until it
    is over anyway (`engage rebuild`, `engage replay`, and a runner starting on empty read
    models): readers' indexes are dropped and built once by the first span sweep, which ends the
    bulk mode; a larger page cache meanwhile. Readers get the same answers, more slowly."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 bulk: bool = False) -> None:
        self.path = path
        self.con = connect(path)
        self._bulk = bulk
        self.con.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        if bulk:
            self.con.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
            drop_indexes(self.con)
        counts.create(self.con)
        self._clock = clock  # where the counts' anchor moves to (answers never depend on it)
        self.directory = self._load_directory()
        self._oids: OrderedDict[Origin, int] = OrderedDict()
        self._rows: list[tuple[Any, ...]] = []  # the page's event rows, inserted together
        self._profiles: set[str] = set()  # profiles the page brings into existence, inserted together
        self._cases: dict[str, tuple[int, Case]] = {}  # the page's changed cases: (owner oid, state)
        # Cases as last written, kept across pages (the open ones are those that change), so that a
        # case's next event reads no row. Only this projector writes them; a rollback forgets them.
        self._written_cases: OrderedDict[str, tuple[int, Case]] = OrderedDict()
        # Profiles whose rows in `profiles` and in `dirty` this projector wrote (a catch-up touches
        # most profiles on every page: inserting them again was ~12 % of a rebuild's fold).
        self._in_profiles = _Written(KEYS_KEPT)
        # The `since` of the dirty marks this projector wrote since the last sweep (a catch-up
        # touches most profiles on every page): a mark is written again only when it moves back.
        self._marked: dict[str, str] = {}
        # Events per profile since the last sweep, to share a sweep evenly (sweep.halfway).
        self._volume: dict[str, int] = {}
        self._contributed = sweep.Contributed()  # heavy profiles' contributions, between sweeps

    @property
    def bulk(self) -> bool:
        return self._bulk

    @property
    def position(self) -> int:
        row = self.con.execute("SELECT position FROM tracking WHERE name=?", (NAME,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.con.close()

    def _profile_count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM profiles").fetchone()[0])

    def has_dirty(self) -> bool:
        return self.con.execute("SELECT 1 FROM dirty LIMIT 1").fetchone() is not None

    def _load_directory(self) -> Directory:
        epochs = {(ch, h): e for ch, h, e in self.con.execute("SELECT channel, handle, epoch FROM epochs")}
        links = {(ch, h, e): Link(at, eid, c) for ch, h, e, c, at, eid in self.con.execute(
            "SELECT channel, handle, epoch, customer, occurred_at, event_id FROM links")}
        erased = {c for (c,) in self.con.execute("SELECT customer FROM erased")}
        return Directory(epochs=epochs, links=links, erased=erased)

    def apply(self, records: Iterable[bytes], *, respan: bool = True) -> int:
        """Fold a page of records and commit it with the tracking position; returns the position.

        With `respan=False` (catching up: more pages follow) the touched profiles are only marked,
        and the first page applied with `respan=True` sweeps each of them once."""
        dirty: dict[str, str] = {}  # profile: the sort key from which to respan it
        position = self.position
        last_hash: str | None = None
        if respan and self._bulk:  # committed on its own: a sweep helper reads through it
            self.con.execute("BEGIN IMMEDIATE")
            create_indexes(self.con, FOLD_INDEXES)
            self.con.execute("COMMIT")
        self.con.execute("BEGIN IMMEDIATE")
        try:
            self._rows.clear()
            self._profiles.clear()
            self._cases.clear()
            for line in records:
                record = _record.decode(line)
                if record.position != position + 1:
                    raise RuntimeError(f"the log jumped from position {position} to {record.position}")
                position, last_hash = record.position, record.hash
                self._fold(record.position, record.event, line, dirty)
            self.con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", self._rows)
            self._write_cases()
            self.con.executemany("INSERT OR IGNORE INTO profiles VALUES (?)", self._in_profiles.new(self._profiles))
            self.con.executemany("INSERT INTO dirty VALUES (?,?) ON CONFLICT (profile) DO UPDATE SET "
                                 "since = min(since, excluded.since)", self._marks(dirty))
            if respan:
                self._respan_dirty(shared=last_hash is None)  # nothing folded in this transaction
            counts.move(self.con, self._clock())
            if last_hash is not None:
                self.con.execute("INSERT OR REPLACE INTO tracking VALUES (?,?,?)", (NAME, position, last_hash))
            self.con.execute("COMMIT")
            self._keep_wal_short()
            if self._bulk and respan:  # the sweep built the readers' indexes
                self._bulk = False
                self.con.execute(f"PRAGMA cache_size={DEFAULT_CACHE}")
        except BaseException:
            if self.con.in_transaction:  # a failed COMMIT (a full disk) may have ended it already
                self.con.execute("ROLLBACK")
            self.directory = self._load_directory()  # the in-memory state rolls back with the rows
            self._oids.clear()
            self._written_cases.clear()
            self._in_profiles.clear()
            self._marked.clear()
            self._contributed.clear()
            raise
        return position

    def _keep_wal_short(self) -> None:
        try:
            size = self.path.with_name(self.path.name + "-wal").stat().st_size
        except FileNotFoundError:
            return
        if size <= WAL_LIMIT:
            return
        # Waiting at most WAL_WAIT for the readers (answers take milliseconds): a busy answer, or
        # an error, is tried again after the next commit; the fold goes on meanwhile.
        self.con.execute(f"PRAGMA busy_timeout={int(WAL_WAIT * 1000)}")
        try:
            with contextlib.suppress(sqlite3.OperationalError):
                self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self.con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    # --- one event -------------------------------------------------------------------------------

    def _marks(self, dirty: dict[str, str]) -> list[tuple[str, str]]:
        """The page's dirty marks to write: those new, or earlier than the one written before."""
        rows = [(profile, since) for profile, since in sorted(dirty.items())
                if since < self._marked.get(profile, _ABOVE)]
        if len(self._marked) + len(rows) > KEYS_KEPT:
            self._marked.clear()  # forgetting only costs writes that change nothing
        self._marked.update(rows)
        return rows

    def _fold(self, position: int, ev: Logged, line: bytes, dirty: dict[str, str]) -> None:
        if ev.customer is not None:
            origin = customer_origin(ev.customer)
        else:
            assert ev.identity is not None  # the log holds exactly one of the two (SPEC §1)
            origin = self.directory.identity_origin(ev.identity["channel"], ev.identity["handle"])
        oid = self._oid(origin)
        rung = rung_of(ev.type)
        occurred_at = sortable_text(ev.occurred_at)
        self._rows.append((position, ev.id, ev.type, occurred_at, oid,
                           None if rung is None else RANK[rung], weight(ev.type, ev.data), _detail(ev.type, ev.data)))
        owner = self.directory.owner(origin)
        if owner is not None:
            self._profiles.add(owner)
            since = FULL if self._bulk else sort_key(occurred_at, ev.id)  # in bulk, nothing has a Resume
            if since < dirty.get(owner, _ABOVE):
                dirty[owner] = since
            if owner in self._volume or len(self._volume) < KEYS_KEPT:
                self._volume[owner] = self._volume.get(owner, 0) + 1
        if ev.type == "identity.linked":
            self._link(ev, dirty)
        elif ev.type == "customer.erased":
            assert ev.customer is not None
            self._erase(ev.customer, position, dirty)
        elif ev.type.startswith("case."):
            tp = from_wire(_whole.decode(line)["event"])
            case = case_id(tp)
            assert case is not None
            self._case(case, oid, tp)

    def _existing_oid(self, origin: Origin) -> int | None:
        oid = self._oids.get(origin)  # once per event folded: one look-up, not two
        if oid is not None:
            return oid
        row = self.con.execute(
            "SELECT oid FROM origins WHERE customer IS ? AND channel IS ? AND handle IS ? AND epoch=?", origin
        ).fetchone()
        if row is None:
            return None
        return self._remember(origin, int(row[0]))

    def _remember(self, origin: Origin, oid: int) -> int:
        """Origins' row ids, at most KEYS_KEPT of them: memory stays flat however many profiles
        there are (2.7M customers held the runner at 711 MiB); the oldest goes first."""
        if len(self._oids) >= KEYS_KEPT:
            self._oids.popitem(last=False)  # O(1): a dict's next(iter()) slows as deletions pile up
        self._oids[origin] = oid
        return oid

    def _oid(self, origin: Origin) -> int:
        """The origin's row id, created when it carries its first event."""
        oid = self._existing_oid(origin)
        if oid is None:
            cur = self.con.execute("INSERT INTO origins (customer, channel, handle, epoch, owner) VALUES (?,?,?,?,?)",
                                   (*origin, self.directory.owner(origin)))
            oid = self._remember(origin, int(cur.lastrowid or 0))
        return oid

    def _link(self, ev: Logged, dirty: dict[str, str]) -> None:
        channel, handle = ev.data["channel"], ev.data["handle"]
        assert ev.customer is not None  # identity.linked requires a customer (SPEC §1)
        link = Link(sortable_text(ev.occurred_at), ev.id, ev.customer)
        change = self.directory.link(channel, handle, link)
        epoch = self.directory.epochs.get((channel, handle), 0)
        kept = self.directory.links[(channel, handle, epoch)]  # the winner, not the one arriving late
        self.con.execute("INSERT OR REPLACE INTO links VALUES (?,?,?,?,?,?)",
                         (channel, handle, epoch, kept.customer, kept.occurred_at, kept.event_id))
        if change is None:
            return
        before, after = change
        origin = Origin(None, channel, handle, epoch)
        oid = self._existing_oid(origin)
        if oid is None:  # an identity that carried no event yet: listed by its customer all the same (§7)
            self._oid(origin)
        else:
            self.con.execute("UPDATE origins SET owner=? WHERE oid=?", (after, oid))
        if before is not None and before.startswith("~"):
            self._forget(before)  # a linked identity is no profile of its own any more
        elif before is not None:
            dirty[before] = FULL  # its history lost an identity's events
        self._profiles.add(after)
        dirty[after] = FULL  # its history gained them, wherever they sort

    def _erase(self, customer: str, position: int, dirty: dict[str, str]) -> None:
        ended = self.directory.erase(customer)
        self.con.execute("INSERT OR IGNORE INTO erased VALUES (?,?)", (customer, position))
        self.con.execute("UPDATE origins SET owner=NULL WHERE owner=?", (customer,))
        for channel, handle in ended:
            self.con.execute("INSERT OR REPLACE INTO epochs VALUES (?,?,?)",
                             (channel, handle, self.directory.epochs[(channel, handle)]))
        self._forget(customer)
        dirty.pop(customer, None)

    def _forget(self, profile: str) -> None:
        self._profiles.discard(profile)  # added earlier in this page: it goes too
        self._in_profiles.discard(profile)
        counts.add(self.con, counts.containing(self.con, counts.anchor(self.con), "profile = ?", (profile,)), -1)
        self.con.execute("DELETE FROM profiles WHERE key=?", (profile,))
        self.con.execute("DELETE FROM engagement_spans WHERE profile=?", (profile,))
        self.con.execute("DELETE FROM advocacy_spans WHERE profile=?", (profile,))
        self.con.execute("DELETE FROM span_state WHERE profile=?", (profile,))
        self._contributed.drop(profile)

    def _case(self, case: str, oid: int, tp: Touchpoint[Any]) -> None:
        """Cases change in memory during a page and are written once at its end (_write_cases)."""
        current: Case | None
        if case in self._cases:
            owner_oid, current = self._cases[case]
        elif case in self._written_cases:
            owner_oid, current = self._written_cases[case]
        else:
            row = self.con.execute("SELECT oid, body FROM cases WHERE case_id=?", (case,)).fetchone()
            current = None if row is None else _case_decoder.decode(row[1])
            owner_oid = oid if row is None else int(row[0])  # a case belongs to whoever opened it
        self._cases[case] = (owner_oid, apply(current, tp))

    def _write_cases(self) -> None:
        rows = []
        for case, (owner_oid, updated) in sorted(self._cases.items()):
            first_response_from, resolution_from = breached_from(updated)
            rows.append((case, owner_oid, updated.state, updated.priority, updated.agent, updated.team,
                         _case_encoder.encode(updated), first_response_from, resolution_from))
        self.con.executemany("INSERT OR REPLACE INTO cases VALUES (?,?,?,?,?,?,?,?,?)", rows)
        for case, written in self._cases.items():
            self._written_cases[case] = written
            self._written_cases.move_to_end(case)
        while len(self._written_cases) > CASES_KEPT:
            self._written_cases.popitem(last=False)  # the one unchanged for longest
        self._cases.clear()

    # --- derived spans ---------------------------------------------------------------------------

    def _insert_spans(self, batch: sweep.Swept) -> None:
        self.con.executemany("INSERT INTO engagement_spans VALUES (?,?,?,?,?,?)", batch.engagement)
        self.con.executemany("INSERT INTO advocacy_spans VALUES (?,?,?,?)", batch.advocacy)
        for profile, cut, engagement, advocacy in batch.tails:
            self._splice("engagement_spans", "level, observed, stated", profile, cut, engagement)
            self._splice("advocacy_spans", "tier", profile, cut, advocacy)
        self.con.executemany("INSERT OR REPLACE INTO span_state VALUES (?,?,?)", batch.resumes)

    def _splice(self, table: str, values: str, profile: str, cut: str, rows: list[tuple[Any, ...]]) -> None:
        """A profile's spans from `cut` on become `rows` (which start there); the span before the cut
        ends there, or runs on as the first of `rows` when it has the same value."""
        self.con.execute(f"DELETE FROM {table} WHERE profile=? AND start>=?", (profile, cut))
        before = self.con.execute(f"SELECT start, {values} FROM {table} WHERE profile=? AND start<? "
                                  "ORDER BY start DESC LIMIT 1", (profile, cut)).fetchone()
        if before is not None:
            joined = tuple(before[1:]) == tuple(rows[0][3:])
            self.con.execute(f"UPDATE {table} SET end=? WHERE profile=? AND start=?",
                             (rows[0][2] if joined else cut, profile, before[0]))
            if joined:
                rows = rows[1:]
        if rows:
            self.con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)

    def _respan_dirty(self, *, shared: bool) -> None:
        """Recompute the spans of every profile marked dirty, in a few set-wise statements: one
        delete per span table, then one pass over the dirty profiles' histories (projections/
        sweep.py). Marked profiles that no longer exist (linked or erased since) just lose their
        spans. Those respanned from their Resume keep their spans before the cut (sweep.py).
        `shared`: this transaction wrote nothing the sweep reads, so a helper process reading
        the committed file sees what this one does and can take half of a large sweep."""
        c, dirty = counts.anchor(self.con), "profile IN (SELECT profile FROM dirty)"
        counts.add(self.con, counts.containing(self.con, c, dirty, ()), -1)
        profiles = sweep.existing_dirty(self.con)
        # Most profiles swept (a catch-up from far behind): rewriting the spans' indexes row by row
        # costs more than building them again. Readers keep the committed ones meanwhile (WAL).
        reindex = (not self._bulk and len(profiles) >= REINDEX_FROM
                   and len(profiles) >= REINDEX_SHARE * self._profile_count())
        if reindex:
            drop_indexes(self.con, SPAN_INDEXES)
        self.con.execute(f"DELETE FROM engagement_spans WHERE {sweep.WHOLE}")
        self.con.execute(f"DELETE FROM advocacy_spans WHERE {sweep.WHOLE}")
        helper = None
        if shared and len(profiles) >= sweep.SHARED_FROM:
            half = sweep.halfway(profiles, self._volume)
            helper = sweep.Helper(self.path, profiles[:half])
            profiles = profiles[half:]
        try:
            for batch in sweep.swept(self.con, profiles, self._contributed):
                self._insert_spans(batch)
            if helper is not None:
                for profile in helper.profiles:  # the helper sweeps them from its own reading
                    self._contributed.drop(profile)
                for batch in helper.results() or sweep.swept(self.con, helper.profiles, self._contributed):
                    self._insert_spans(batch)
        finally:
            if helper is not None:
                helper.stop()
        if self._bulk:
            create_indexes(self.con, DEFERRED_INDEXES)
        elif reindex:
            create_indexes(self.con, SPAN_INDEXES)
        counts.add(self.con, counts.containing(self.con, c, dirty, ()))
        self.con.execute("DELETE FROM dirty")
        self._marked.clear()
        self._volume.clear()


class _Written:
    """Keys this projector knows to have a row in one table (committed, or in the open
    transaction), so that inserting them again is skipped. At most `capacity` are remembered;
    the owner clears it on a rollback and discards a key whose row it deletes."""

    def __init__(self, capacity: int) -> None:
        self._keys: set[str] = set()
        self._capacity = capacity

    def new(self, keys: set[str]) -> list[tuple[str]]:
        """The rows to insert for `keys` (sorted: the table's order), which are remembered from now on."""
        fresh = keys - self._keys
        if len(self._keys) + len(fresh) > self._capacity:
            self._keys.clear()  # forgetting only costs inserts that change nothing
        self._keys |= fresh
        return [(key,) for key in sorted(fresh)]

    def discard(self, key: str) -> None:
        self._keys.discard(key)

    def clear(self) -> None:
        self._keys.clear()


def breached_from(case: Case) -> tuple[str | None, str | None]:
    """From which as_of instant each SLA of the case reads `breached` (SPEC §5); None: never.

    Whole minutes exceed a target t exactly from opened_at + (t + 1) minutes on."""
    first_target, resolution_target = TARGETS[case.priority]
    if case.first_response_at is not None:
        late = minutes(case.opened_at, case.first_response_at) > first_target
        first_response = BEGINNING if late else None
    else:
        first_response = sortable(case.opened_at + timedelta(minutes=first_target + 1))
    if case.state in ("solved", "closed") and case.solved_at is not None:
        late = minutes(case.opened_at, case.solved_at) > resolution_target
        resolution = BEGINNING if late else None
    else:
        resolution = sortable(case.opened_at + timedelta(minutes=resolution_target + 1))
    return first_response, resolution


def _detail(event_type: str, data: dict[str, Any]) -> str | None:
    """What the folds need beyond rung and weight: a stated level, or a consent change."""
    if event_type == "preferences.stated":
        return data.get("level") or ""
    if event_type == "consent.changed":
        return f"{data['purpose']}:{'granted' if data['granted'] else 'withdrawn'}"
    return None
