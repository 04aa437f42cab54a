"""The log: accepted touchpoints, hash-chained, in one eventsourcing stream, and the write side's
tables (ids, case states, erasures, identity links, keys, rejects) committed in the same transaction.

The log is a single stream of the eventsourcing SQLite recorder whose `originator_version` is the
event's `position`. The recorder's primary key (originator_id, originator_version) makes a second
writer fail loudly rather than fork or leave a hole, and the notification id (the table's rowid)
equals the position, which `open` checks.

One call of `commit` decides and commits a whole batch in one transaction: the same pattern as the
library's process recorder, which writes its tracking row inside `_insert_events`' transaction. One
`save()` per event would reach only a few thousand events a second; a batch pays one fsync.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
)

from commands.cases import Case, apply
from commands.decisions import decide, erased_customer
from commands.instants import rfc3339
from commands.outcomes import Accepted, Duplicate, Outcome, Redelivered, Rejected
from commands.parsing import canonical_json, digest_of, impersonal_digest, normalise_identity, parse
from commands.touchpoints import PERSONAL_FIELDS, Touchpoint, case_id, from_wire, personal_fields, profile_key
from engine.chain import ZERO_HASH, Sealer
from engine.keys import KEYS_INDEX, KEYS_TABLE, KeyRing, decrypt_bytes, encrypt_bytes, encrypt_text, key_id_of
from engine.maybe import Maybe
from engine.received import Received
from engine.settings import Damaged, causes
from engine.sql import select_in

LOG_ID = uuid.uuid5(uuid.NAMESPACE_URL, "urn:engage:log")
_LOG_HEX = LOG_ID.hex  # the originator_id column of every row
TOPIC = "engage:touchpoint/v1"

SIDE_TABLES = [
    # Idempotency by id, forever, not only within a JetStream window (SPEC §2): the digest of the
    # normalised plaintext event tells `duplicate` from `duplicate_conflict`. `key_id`: the key its
    # personal fields are stored under. Erasure empties the digests under the keys it destroys: a
    # hash of a name or an email can be confirmed by guessing, so it must go with the keys (§6).
    "CREATE TABLE IF NOT EXISTS event_ids ("
    "id TEXT PRIMARY KEY, digest BLOB NOT NULL, position INTEGER NOT NULL, key_id TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS cases (case_id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS erased (customer TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID",
    # The identity links in force (latest by (occurred_at, id)); erasure ends them (SPEC §6).
    "CREATE TABLE IF NOT EXISTS links (channel TEXT NOT NULL, handle TEXT NOT NULL, customer TEXT NOT NULL, "
    "occurred_at TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (channel, handle)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS links_by_customer ON links(customer)",
    KEYS_TABLE,
    KEYS_INDEX,
    # Every rejected input, kept: raw bytes encrypted under the key of the profile they name
    # (key_id set), in plain bytes when they name none, NULL once shredded (SPEC §6).
    "CREATE TABLE IF NOT EXISTS rejects (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT, "
    "reason TEXT NOT NULL, detail TEXT NOT NULL, received_at TEXT NOT NULL, via TEXT NOT NULL, "
    "owner TEXT, key_id TEXT, raw BLOB)",
    "CREATE INDEX IF NOT EXISTS rejects_by_reason ON rejects(reason, seq)",
    # The highest JetStream sequence whose outcome is committed, per stream incarnation: a message
    # delivered again (acked but not yet purged when the consumer restarted) is not decided twice,
    # so a reject is never kept twice (an accepted event would only come back as a duplicate).
    "CREATE TABLE IF NOT EXISTS deliveries (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
]

# The digest of an event whose content was shredded with its keys: it can no longer be compared.
SHREDDED = b""

_case_encoder = msgspec.msgpack.Encoder()
_case_decoder = msgspec.msgpack.Decoder(Case)


_logger = logging.getLogger("engage.log")

class LogError(Exception):
    """The log cannot be used as it is (a user-facing, one-line message)."""


class LogDamaged(LogError, Damaged):
    """The log's file is damaged (malformed pages, or no database at all): not a user's mistake,
    and nothing the engine can mend. `engage verify` says where records stop verifying."""


def damaged(error: BaseException) -> bool:
    """Whether SQLite, somewhere down this error's causes, found the file damaged."""
    return any(isinstance(cause, sqlite3.DatabaseError) and getattr(cause, "sqlite_errorcode", None) in DAMAGED
               for cause in causes(error))


# SQLite's answers for a file that is not a database, or one whose pages are garbage.
DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


# The recorder's table of events. Its rowid is the notification id, which this log keeps equal to
# the position: replays copy it by rowid, and the read models' timelines join it by position.
EVENTS_TABLE = "stored_events"

# SQLite's default page cache is 2 MiB. The idempotency index (event ids) and the keys are looked up
# and inserted at random places; once they outgrow the cache every batch reads pages back. Only the
# writer needs it: readers go through the records in order, which the default cache serves as fast
# (measured on 1M records: the same records/s, 56 MiB of peak RSS instead of 88).
CACHE_KIB = 32 * 1024
LOCK_TIMEOUT = 30  # seconds a connection waits for another's lock


class _Pool(SQLiteConnectionPool):
    """The library's pool, plus what it never sets: every connection commits with a full fsync
    (a committed outcome survives power loss, not only a crash) and overwrites deleted content
    (a destroyed key does not linger in a free page); the writer's connections get a larger cache."""

    def __init__(self, *, db_name: str, cache_kib: int | None) -> None:
        self._cache_kib = cache_kib
        super().__init__(db_name=db_name, lock_timeout=LOCK_TIMEOUT)

    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        cursor = conn.cursor()
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA secure_delete=ON")
        if self._cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{self._cache_kib}")
        return conn


class _Datastore(SQLiteDatastore):
    def __init__(self, db_name: str, *, writer: bool, immutable: bool = False) -> None:
        if not writer:  # a reader's connection (each thread opens its own) never creates an empty log
            db_name = Path(db_name).absolute().as_uri() + ("?immutable=1" if immutable else "?mode=rw")
        super().__init__(db_name, lock_timeout=LOCK_TIMEOUT)
        self.pool.close()
        self.pool = _Pool(db_name=db_name, cache_kib=CACHE_KIB if writer else None)


class LogRecorder(SQLiteApplicationRecorder):
    """The eventsourcing recorder with the write side's tables beside its events table."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *SIDE_TABLES]

    def insert_within(self, c: SQLiteCursor, rows: list[tuple[str, int, str, bytes]]) -> None:
        """Append rows of the events table (originator id in hex, version, topic, state) inside a
        transaction the caller holds (the side tables commit with it). One statement for the
        batch: the library's `_insert_events` runs one per event, for row ids this log does not
        need (each event's row id is its position, checked when the log opens)."""
        c.executemany(self.insert_events_statement, rows)


def on_read_only_media(path: Path) -> bool:
    """A database file in a directory nothing may write (a read-only mount, an immutable directory:
    an auditor's archive), with no WAL to replay: read in SQLite's immutable mode, since WAL
    readers need a shared-memory file they cannot make there. That mode skips the WAL, so a log
    with one (not stopped cleanly) is not read so."""
    wal = Path(f"{path}-wal")
    return path.is_file() and not os.access(path.parent, os.W_OK) and not (wal.exists() and wal.stat().st_size > 0)


def read_only_uri(path: Path) -> str:
    """The URI a reader opens a database file with, on read-only media too (see on_read_only_media)."""
    return path.absolute().as_uri() + ("?immutable=1" if on_read_only_media(path) else "?mode=ro")


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class Head(msgspec.Struct, frozen=True):
    position: int
    hash: str
    recorded_at: datetime


class RejectRow(msgspec.Struct, frozen=True):
    seq: int
    id: str | None
    reason: str
    detail: str
    received_at: str
    via: str


class _Sniffed(msgspec.Struct):
    """What a rejected input names, read leniently: whom its raw bytes belong to."""

    id: Any = None
    customer: Any = None
    identity: Any = None


_sniff = msgspec.json.Decoder(_Sniffed)


class _BatchView:
    """The WriteView of commands.decisions over the open transaction, for one batch.

    What the batch's events ask (their ids, their customers' erasure) is read in one query each;
    what the batch itself decides is kept here and written once at the end, so deciding costs a
    few statements per batch rather than several per event."""

    def __init__(self, c: SQLiteCursor, touchpoints: Sequence[Touchpoint[Any]], known: _Known) -> None:
        self._c = c
        self._known = known
        ids = known.ids.only_possible({tp.id: None for tp in touchpoints})
        customers = list({tp.customer: None for tp in touchpoints if isinstance(tp.customer, str)})
        logged = select_in(c, "SELECT id, digest, position, key_id FROM event_ids", "id", ids)
        self._ids: dict[str, tuple[bytes, int, str | None]] = {row[0]: (row[1], row[2], row[3]) for row in logged}
        self._erased = dict.fromkeys(customers, False)
        erased = select_in(c, "SELECT customer FROM erased", "customer", known.erased.only_possible(customers))
        self._erased.update((row[0], True) for row in erased)
        cases = list({case for tp in touchpoints if (case := case_id(tp)) is not None})
        self._cases: dict[str, Case | None] = dict.fromkeys(cases)
        for case, state in select_in(c, "SELECT case_id, state FROM cases", "case_id", cases):
            self._cases[case] = _case_decoder.decode(state)
        self.new_ids: dict[str, tuple[bytes, int, str | None]] = {}
        self._new_personal: dict[str, Touchpoint[Any]] = {}  # the batch's events under a key, by id
        self.changed_cases: set[str] = set()

    def logged(self, event_id: str) -> tuple[bytes, int] | None:
        seen = self._ids.get(event_id)
        return None if seen is None else (seen[0], seen[1])

    def case(self, case: str) -> Case | None:
        if case not in self._cases:
            self._c.execute("SELECT state FROM cases WHERE case_id=?", (case,))
            row = self._c.fetchone()
            self._cases[case] = None if row is None else _case_decoder.decode(row[0])
        return self._cases[case]

    def is_erased(self, customer: str) -> bool:
        if customer not in self._erased:  # a reject's raw bytes may name someone the batch did not
            found = False
            if self._known.erased.may_hold(customer):
                self._c.execute("SELECT 1 FROM erased WHERE customer=?", (customer,))
                found = self._c.fetchone() is not None
            self._erased[customer] = found
        return self._erased[customer]

    def log(self, tp: Touchpoint[Any], digest: bytes, position: int, key_id: str | None) -> None:
        self._ids[tp.id] = self.new_ids[tp.id] = (digest, position, key_id)
        if key_id is not None:
            self._new_personal[tp.id] = tp

    def shred(self, key_ids: set[str], impersonal: dict[str, bytes]) -> None:
        """The digests under these keys, which an erasure destroys, as the batch knows them: those
        committed before it become `impersonal` (read from their records), the batch's own are
        made from its events."""
        for known in (self._ids, self.new_ids):
            for event_id, (_, position, key_id) in known.items():
                if key_id in key_ids:
                    digest = (impersonal[event_id] if event_id in impersonal
                              else impersonal_digest(self._new_personal[event_id]))
                    known[event_id] = (digest, position, key_id)

    def set_case(self, case: Case) -> None:
        self._cases[case.case] = case
        self.changed_cases.add(case.case)

    def erase(self, customer: str) -> None:
        self._erased[customer] = True
        self._known.erased.add([customer])

    def flush(self) -> None:
        """Write what the batch decided, in the batch's transaction."""
        self._c.executemany("INSERT INTO event_ids (id, digest, position, key_id) VALUES (?,?,?,?)",
                            [(event_id, *entry) for event_id, entry in self.new_ids.items()])
        self._known.ids.add(self.new_ids)
        self._c.executemany(
            "INSERT OR REPLACE INTO cases VALUES (?,?)",
            [(case, _case_encoder.encode(self._cases[case])) for case in sorted(self.changed_cases)],
        )


class _Known:
    """Which event ids and erased customers the log may hold (engine/maybe.py), read from its
    tables at the writer's first batch and kept up to date by every batch after it."""

    def __init__(self, c: SQLiteCursor) -> None:
        raw = c.sqlite_cursor.connection
        self.ids = Maybe(row[0] for row in raw.execute("SELECT id FROM event_ids"))
        # Erasures are few: 128 KiB keeps false positives under 1 % up to ~50,000 of them.
        self.erased = Maybe((row[0] for row in raw.execute("SELECT customer FROM erased")), bits=1 << 20)


class _Deliveries:
    """Which JetStream messages of a batch were committed before (see the `deliveries` table)."""

    def __init__(self, c: SQLiteCursor) -> None:
        self._c = c
        self._committed: dict[str, int] = {}
        self._new: dict[str, int] = {}

    def seen(self, item: Received) -> bool:
        """True for a message decided before; otherwise it counts as decided from now on."""
        if item.stream is None or item.seq is None:
            return False
        if item.stream not in self._committed:
            self._c.execute("SELECT seq FROM deliveries WHERE stream=?", (item.stream,))
            row = self._c.fetchone()
            self._committed[item.stream] = row[0] if row else 0
        if item.seq <= max(self._committed[item.stream], self._new.get(item.stream, 0)):
            return True
        self._new[item.stream] = item.seq
        return False

    def flush(self) -> None:
        self._c.executemany("INSERT OR REPLACE INTO deliveries VALUES (?,?)", list(self._new.items()))


def _carries_personal(tp: Touchpoint[Any]) -> bool:
    return any(isinstance(getattr(tp.data, name), str) for name in personal_fields(type(tp.data)))


def _now() -> datetime:
    return datetime.now(UTC)


class Log:
    """The single writer of one data directory's log (ingest holds it on one thread)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _now, create: bool = True) -> None:
        """Open the log at `path`; `create=False` opens an existing one without writing to it
        (audit tools run beside a live engine, or on a copy)."""
        self.path = path
        self._clock = clock
        self._shred_due = False  # an erasure committed; its destroyed keys may still be in WAL frames
        self._shred_retrying = False  # a reader kept the last truncation from happening
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._open(create)
            except Exception:
                if create or not self._on_read_only_media():
                    raise
                self._datastore.close()  # a snapshot on read-only media: see on_read_only_media
                self._open(create, immutable=True)
            self._head = self._read_head()
            if create:
                # A writer that died between an erasure's commit and its checkpoint left the
                # destroyed keys in WAL frames: the next one truncates the WAL before anything else.
                self._shred_wal()
        except LogError:
            raise
        except Exception as e:  # sqlite3's errors, or the library's wrappers of them
            if damaged(e):
                raise LogDamaged(f"the log at {path} is damaged ({e}): restore it from a backup") from e
            raise LogError(f"cannot open the log at {path}: {e}") from e
        self._keys = KeyRing()
        self._known: _Known | None = None  # made by the first commit: readers never need it
        self._file = file_identity(path)

    def _check_file(self) -> None:
        """The file opened is still the log at `path`. SQLite writes on through a deleted or
        replaced file's descriptor: commits would succeed, be acknowledged, and be lost with it."""
        if file_identity(self.path) != self._file:
            raise LogError(f"the log file {self.path} was deleted or replaced while the engine had it open: nothing "
                           "more is committed; stop the engine and put the log back (or restore it from a backup)")

    # --- opening -------------------------------------------------------------------------------

    def _open(self, create: bool, *, immutable: bool = False) -> None:
        self._immutable = immutable
        self._datastore = _Datastore(str(self.path), writer=create, immutable=immutable)
        self._recorder = LogRecorder(self._datastore, events_table_name=EVENTS_TABLE)
        if create:
            self._recorder.create_table()
            self._upgrade_event_ids()
            self._check_writable()
        if not immutable:  # a snapshot read as immutable is read only: no journal, nothing to make durable
            self._check_durability()

    def _on_read_only_media(self) -> bool:
        return on_read_only_media(self.path)

    def _upgrade_event_ids(self) -> None:
        """A log of an earlier layout: event_ids gains `key_id`, read from each record's ciphertext
        (which names its key), and the digests under keys erasure already destroyed are emptied."""
        with self._datastore.transaction(commit=True) as c:
            c.execute("PRAGMA table_info(event_ids)")
            if "key_id" not in {row[1] for row in c.fetchall()}:
                _logger.warning("the log at %s is of an earlier layout: shredding the digests of erased "
                                "customers' events (once; it reads the whole log)", self.path)
                c.execute("ALTER TABLE event_ids ADD COLUMN key_id TEXT")
                records = c.sqlite_cursor.connection.execute(f"SELECT state FROM {EVENTS_TABLE} ORDER BY rowid")
                while rows := records.fetchmany(5000):
                    events = [_keyed.decode(state).event for (state,) in rows]
                    c.executemany("UPDATE event_ids SET key_id=? WHERE id=?",
                                  [(key_id, e.id) for e in events if (key_id := _key_of(e)) is not None])
                c.execute("UPDATE event_ids SET digest=? WHERE key_id IS NOT NULL "
                          "AND key_id NOT IN (SELECT key_id FROM keys)", (SHREDDED,))

    def _check_writable(self) -> None:
        """A log that can be read but not written (a read-only mount, an immutable file) is
        refused now, not at the first commit: every input would answer 503 until someone looked.
        The probe writes in a transaction that is rolled back: nothing reaches the file."""
        with self._datastore.transaction(commit=False) as c:
            c.execute("PRAGMA user_version")
            version = int(c.fetchone()[0])
            try:
                c.execute(f"PRAGMA user_version={version}")
            except sqlite3.OperationalError as e:
                raise LogError(f"cannot write the log at {self.path}: {e}") from e

    def _check_durability(self) -> None:
        with self._datastore.transaction(commit=False) as c:
            c.execute("PRAGMA journal_mode")
            mode = c.fetchone()[0]
            c.execute("PRAGMA synchronous")
            sync = c.fetchone()[0]
        if str(mode).lower() != "wal" or sync != 2:
            raise LogError(f"the log at {self.path} is not durable: journal_mode={mode}, synchronous={sync}")

    def _read_head(self) -> Head:
        last = self._recorder.select_events(LOG_ID, desc=True, limit=1)
        if not last:
            return Head(0, ZERO_HASH, datetime.fromtimestamp(0, UTC))
        record = msgspec.json.decode(last[0].state)
        head = Head(record["position"], record["hash"], datetime.fromisoformat(record["recorded_at"]))
        top = self._recorder.max_notification_id() or 0
        if top != head.position:
            raise LogError(
                f"the log at {self.path} has {top} rows but its head is position {head.position}: "
                "something else wrote to it"
            )
        return head

    @property
    def head(self) -> Head:
        return self._head

    def close(self) -> None:
        self._datastore.close()

    # --- writing -------------------------------------------------------------------------------

    def commit(self, batch: Sequence[Received]) -> list[Outcome]:
        """Decide every input of the batch in order and commit all outcomes in one transaction.

        Returns one outcome per input. Raises only when something is broken (disk, database):
        then nothing of the batch is committed and the caller must not acknowledge it."""
        self._check_file()
        moment = max(self._clock(), self._head.recorded_at)
        recorded_at = rfc3339(moment)
        parsed = [_parse(item) for item in batch]
        outcomes: list[Outcome] = []
        stored: list[tuple[str, int, str, bytes]] = []  # rows of the events table (insert_within)
        position = self._head.position
        sealer = Sealer(recorded_at, self._head.hash)
        try:
            with self._datastore.transaction(commit=True) as c:
                touchpoints = [tp for tp in parsed if not isinstance(tp, Rejected)]
                if self._known is None:
                    self._known = _Known(c)
                view = _BatchView(c, touchpoints, self._known)
                self._keys.load(c, (profile_key(tp) for tp in touchpoints if _carries_personal(tp)))
                delivered = _Deliveries(c)
                for item, tp in zip(batch, parsed, strict=True):
                    if delivered.seen(item):
                        outcomes.append(Redelivered(item.seq or 0))
                        continue
                    if isinstance(tp, Rejected):
                        outcomes.append(self._keep_reject(c, view, item, tp, recorded_at))
                        continue
                    try:
                        encoded = canonical_json(tp)
                        digest = digest_of(encoded)
                        verdict: Outcome | None = decide(tp, digest, view)
                    except Exception as e:  # a defect, before anything was written for this input
                        verdict = _undecidable(e)
                    if isinstance(verdict, Rejected):
                        outcomes.append(self._keep_reject(c, view, item, verdict, recorded_at))
                        continue
                    if isinstance(verdict, Duplicate):
                        outcomes.append(verdict)
                        continue
                    position += 1
                    form, key_id = self._stored_form(c, tp, encoded, recorded_at)
                    stored.append((_LOG_HEX, position, TOPIC, sealer.seal(position, form)))
                    self._evolve(c, view, tp, digest, position, key_id)
                    outcomes.append(Accepted(position))
                view.flush()
                delivered.flush()
                if stored:
                    self._recorder.insert_within(c, stored)
        except BaseException:
            self._keys.forget_uncommitted()
            raise
        self._head = Head(position, sealer.hash, moment)
        if self._shred_due:
            self._shred_wal()
        return outcomes

    def _shred_wal(self) -> None:
        """Erasure reaches the WAL too (SPEC §6). A deleted key is zeroed in its page (secure_delete),
        but the WAL keeps earlier images of that page until a checkpoint copies the latest image
        into the database and truncates the WAL. A reader holding an old snapshot can make the
        checkpoint give up: then it is tried again after the next commit (the window is that short)."""
        with self._datastore.get_connection(commit=True) as conn:
            raw = conn._sqlite_conn
            # Without waiting: a reader's snapshot can last as long as an export does, and the
            # writer must not stall ingest behind it (it waited up to LOCK_TIMEOUT).
            raw.execute("PRAGMA busy_timeout=0")
            try:
                busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                raw.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT * 1000}")
        retrying, self._shred_due = self._shred_retrying, bool(busy)
        self._shred_retrying = self._shred_due
        if busy and not retrying:  # once, not on every commit while a reader holds on
            _logger.warning("a reader kept the WAL from being truncated after an erasure; trying again after "
                            "each commit until it is")
        elif not busy and retrying:
            _logger.info("the WAL is truncated: what the erasure destroyed is gone from it too")

    def _stored_form(self, c: SQLiteCursor, tp: Touchpoint[Any], encoded: bytes,
                     now: str) -> tuple[bytes, str | None]:
        """The normalised event as the log holds it, in canonical JSON, and the key its personal
        fields are ciphertext under: the key of the profile that sent them (SPEC §8). `encoded` is
        the event's canonical JSON as it came (what it is when it carries no personal field)."""
        names = personal_fields(type(tp.data))
        plain = {name: value for name in names if isinstance(value := getattr(tp.data, name), str)}
        if not plain:
            return encoded, None
        key_id, aead = self._keys.current(c, profile_key(tp), now)
        sealed = {name: encrypt_text(key_id, aead, value) for name, value in plain.items()}
        return canonical_json(msgspec.structs.replace(tp, data=msgspec.structs.replace(tp.data, **sealed))), key_id

    def _evolve(self, c: SQLiteCursor, view: _BatchView, tp: Touchpoint[Any], digest: bytes,
                position: int, key_id: str | None) -> None:
        """What an accepted event changes on the write side."""
        view.log(tp, digest, position, key_id)
        case = case_id(tp)
        if case is not None:
            view.set_case(apply(view.case(case), tp))
        if tp.type == "identity.linked":
            self._link(c, tp)
        gone = erased_customer(tp)
        if gone is not None:
            destroyed, impersonal = self._erase(c, gone, position)
            view.shred(destroyed, impersonal)
            view.erase(gone)

    def _link(self, c: SQLiteCursor, tp: Touchpoint[Any]) -> None:
        """The latest link by (occurred_at, id) wins (SPEC §3)."""
        channel, handle = tp.data.channel, tp.data.handle  # parse() normalised them already
        at = rfc3339(tp.occurred_at)
        c.execute("SELECT occurred_at, event_id FROM links WHERE channel=? AND handle=?", (channel, handle))
        row = c.fetchone()
        if row is None or (_sortable(row[0]), row[1]) < (_sortable(at), tp.id):
            c.execute("INSERT OR REPLACE INTO links VALUES (?,?,?,?,?)", (channel, handle, tp.customer, at, tp.id))

    def _erase(self, c: SQLiteCursor, customer: str, position: int) -> tuple[set[str], dict[str, bytes]]:
        """Crypto-shredding (SPEC §6): the customer's keys and those of the identities linked to it
        go; the digests of the events whose personal fields they held become impersonal digests
        (what a digest of a name would confirm, guessed, goes with the keys); the links end, so
        those identities start afresh. Returns the ids of the keys destroyed, and the impersonal
        digests of the events committed before this batch, by event id."""
        c.execute("SELECT channel, handle FROM links WHERE customer=?", (customer,))
        owners = [customer, *(f"~{ch}:{h}" for ch, h in c.fetchall())]
        destroyed = self._keys.destroy(c, owners)
        # One pass over the ids (~60 ms at 1M events): an index by key would cost every event with
        # personal fields ~3 µs more to write (measured), for erasures that are rare. Each event's
        # record is read back by position (its rowid): the stored event differs from the one sent
        # only in the personal fields, which the impersonal digest leaves out.
        impersonal: dict[str, bytes] = {}
        raw = c.sqlite_cursor.connection
        for event_id, at in select_in(c, "SELECT id, position FROM event_ids", "key_id", destroyed):
            row = raw.execute(f"SELECT state FROM {EVENTS_TABLE} WHERE rowid=?", (at,)).fetchone()
            impersonal[event_id] = (SHREDDED if row is None  # a damaged log: comparable no more
                                    else impersonal_digest(from_wire(_whole_record.decode(row[0])["event"])))
        c.executemany("UPDATE event_ids SET digest=? WHERE id=?", [(d, i) for i, d in impersonal.items()])
        self._shred_due = True
        # A kept reject that named nobody the patterns of _whose() recognise is plain bytes: those
        # that quote the customer's key anyway (`["c-42", …]`, a form no pattern reads) go too.
        for quoted in _quoted_forms(customer):
            c.execute("UPDATE rejects SET raw=NULL WHERE key_id IS NULL AND raw IS NOT NULL AND instr(raw, ?) > 0",
                      (quoted,))
        c.execute("DELETE FROM links WHERE customer=?", (customer,))
        c.execute("INSERT OR IGNORE INTO erased VALUES (?,?)", (customer, position))
        return set(destroyed), impersonal

    def _keep_reject(self, c: SQLiteCursor, view: _BatchView, item: Received, rejected: Rejected,
                     now: str) -> Rejected:
        """Nothing a producer sends is lost (SPEC §2), and erasure reaches kept rejects (§6)."""
        event_id, owner = _whose(item.raw)
        key_id: str | None = None
        raw: bytes | None = item.raw
        if owner is not None:
            if not owner.startswith("~") and view.is_erased(owner):
                raw = None  # names an erased customer: its bytes are shredded on arrival
            else:
                key_id, aead = self._keys.current(c, owner, now)
                raw = encrypt_bytes(aead, key_id, item.raw)
        c.execute(
            "INSERT INTO rejects (event_id, reason, detail, received_at, via, owner, key_id, raw) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (event_id, rejected.reason, rejected.detail, rfc3339(item.received_at), item.via, owner,
             key_id, raw),
        )
        return rejected

    # --- reading -------------------------------------------------------------------------------

    def hash_at(self, position: int) -> str | None:
        """The hash of the record at `position`, None when the log has none there."""
        found = self.records(after=position - 1, limit=1) if position >= 1 else []
        return str(msgspec.json.decode(found[0])["hash"]) if found else None

    def records(self, after: int = 0, limit: int = 1000, upto: int | None = None) -> list[bytes]:
        """The stored records (the export lines) at positions after `after`, in order."""
        notes = self._recorder.select_notifications(start=after + 1, limit=limit, stop=upto)
        return [n.state for n in notes]

    def iter_records(self, after: int = 0, upto: int | None = None, page: int = 2000) -> Iterator[bytes]:
        """Every record after `after` (up to `upto`, inclusive)."""
        for records in self.pages(after, upto, page):
            yield from records

    def pages(self, after: int = 0, upto: int | None = None, page: int = 2000) -> Iterator[list[bytes]]:
        """The records after `after` a page at a time, paged by notification id: a row missing
        from a tampered file shows as a gap in positions, never as a skipped page."""
        while True:
            notes = self._recorder.select_notifications(start=after + 1, limit=page, stop=upto)
            if not notes:
                return
            yield [n.state for n in notes]
            after = notes[-1].id

    def rejects(self, *, reason: str | None = None, after: int = 0, limit: int = 100) -> list[RejectRow]:
        sql = "SELECT seq, event_id, reason, detail, received_at, via FROM rejects WHERE seq>?"
        params: list[Any] = [after]
        if reason is not None:
            sql += " AND reason=?"
            params.append(reason)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        with self._datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [RejectRow(*row) for row in c.fetchall()]

    def latest_rejects(self, limit: int = 10) -> list[RejectRow]:
        """The newest kept rejects, newest first (what a dashboard shows)."""
        with self._datastore.transaction(commit=False) as c:
            c.execute("SELECT seq, event_id, reason, detail, received_at, via FROM rejects ORDER BY seq DESC LIMIT ?",
                      (limit,))
            return [RejectRow(*row) for row in c.fetchall()]

    def reject_counts(self) -> dict[str, int]:
        with self._datastore.transaction(commit=False) as c:
            c.execute("SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY reason")
            return {row[0]: row[1] for row in c.fetchall()}

    def reject_raw(self, seq: int) -> bytes | None:
        """A kept reject's raw bytes, readable unless shredded (for roles allowed personal data)."""
        with self._datastore.transaction(commit=False) as c:
            c.execute("SELECT key_id, raw FROM rejects WHERE seq=?", (seq,))
            row = c.fetchone()
            if row is None or row[1] is None:
                return None
            if row[0] is None:
                return bytes(row[1])
            aead = _stored_key(c, row[0])
            return None if aead is None else decrypt_bytes(aead, row[0], bytes(row[1]))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The records and the keys as they stood at one instant, for an export that decrypts: one
        read transaction, so an erasure committed meanwhile is wholly in it (its customer's fields
        unreadable) or not at all. Read page by page, from any one thread at a time."""
        con = sqlite3.connect(read_only_uri(self.path), uri=True, isolation_level=None, check_same_thread=False)
        try:
            con.execute("BEGIN")
            con.execute("SELECT COUNT(*) FROM keys").fetchone()  # the snapshot starts at the first read
            yield Snapshot(con)
        finally:
            con.close()

    def key_lookup(self) -> Callable[[str], AESGCM | None]:
        """key id -> AESGCM or None (destroyed): for reading personal fields back."""

        def lookup(key_id: str) -> AESGCM | None:
            with self._datastore.transaction(commit=False) as c:
                return _stored_key(c, key_id)

        return lookup


class Snapshot:
    """Log.snapshot(): records by position and keys by id, from one read transaction."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con

    def pages(self, page: int = 2000) -> Iterator[list[bytes]]:
        """As Log.pages: paged by notification id (the rowid), so a missing row shows as a gap in
        positions, never as a skipped page."""
        after = 0
        while rows := self._con.execute(f"SELECT rowid, state FROM {EVENTS_TABLE} WHERE rowid > ? ORDER BY rowid "
                                        "LIMIT ?", (after, page)).fetchall():
            yield [bytes(state) for _, state in rows]
            after = rows[-1][0]

    def iter_records(self, page: int = 2000) -> Iterator[bytes]:
        for records in self.pages(page):
            yield from records

    def key(self, key_id: str) -> AESGCM | None:
        row = self._con.execute("SELECT key FROM keys WHERE key_id=?", (key_id,)).fetchone()
        return None if row is None else AESGCM(row[0])


def _stored_key(c: SQLiteCursor, key_id: str) -> AESGCM | None:
    """Readers ask the database, never the writer's cache: a key erasure destroyed stays gone."""
    c.execute("SELECT key FROM keys WHERE key_id=?", (key_id,))
    row = c.fetchone()
    return None if row is None else AESGCM(row[0])


class _KeyedEvent(msgspec.Struct):
    id: str
    data: dict[str, Any] = {}


class _KeyedRecord(msgspec.Struct):
    event: _KeyedEvent


_keyed = msgspec.json.Decoder(_KeyedRecord)
_whole_record = msgspec.json.Decoder(dict[str, Any])


def _key_of(event: _KeyedEvent) -> str | None:
    """The key a stored event's personal fields are ciphertext under, if it has any."""
    for name in PERSONAL_FIELDS:
        value = event.data.get(name)
        if isinstance(value, str) and (key_id := key_id_of(value)) is not None:
            return key_id
    return None


def _parse(item: Received) -> Touchpoint[Any] | Rejected:
    try:
        return parse(item.raw, item.received_at)
    except Exception as e:  # parse() returns for any bytes: this is a defect
        return _undecidable(e)


def _undecidable(e: Exception) -> Rejected:
    """An input that a defect kept from being decided is kept as a reject with its raw bytes, like
    every other, rather than failing its whole batch: over NATS a batch that can never commit
    is delivered again and again and blocks everything behind it. The traceback is logged."""
    _logger.error("an input could not be decided (a defect): kept as a malformed reject", exc_info=e)
    return Rejected("malformed", f"could not be decided: the engine failed ({type(e).__name__}); "
                                 "it is logged, and the input can be sent again once that is fixed")


def _quoted_forms(key: str) -> list[bytes]:
    """How a producer's bytes may quote a key: as JSON writes it (raw UTF-8, or \\u-escaped), or
    single-quoted as Python's str() does."""
    return sorted({msgspec.json.encode(key), json.dumps(key).encode("ascii"), b"'" + key.encode() + b"'"})


def _sortable(instant: str) -> datetime:
    return datetime.fromisoformat(instant)


_JSON_STRING = rb'"((?:[^"\\]|\\.)*)"'
_CUSTOMER = re.compile(rb'"customer"\s*:\s*' + _JSON_STRING)
# What Python's str() of a dict writes instead of JSON (a producer's bug): 'customer': 'c-42'.
_REPR_CUSTOMER = re.compile(rb"'customer'\s*:\s*'((?:[^'\\]|\\.)*)'")
_IDENTITY = re.compile(rb'"identity"\s*:\s*\{([^{}]*)\}')
_CHANNEL = re.compile(rb'"channel"\s*:\s*' + _JSON_STRING)
_HANDLE = re.compile(rb'"handle"\s*:\s*' + _JSON_STRING)


def _string_of(raw: bytes) -> str | None:
    try:
        return msgspec.json.decode(raw, type=str)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


# `\u0063ustomer` is "customer" to a JSON reader: matched as such (but not an escaped quote or
# backslash, which would end or escape a string the patterns read).
_ESCAPED_ASCII = re.compile(rb"\\u00([2-7][0-9a-fA-F])")


def _unescaped(match: re.Match[bytes]) -> bytes:
    char = bytes([int(match.group(1), 16)])
    return match.group(0) if char in (b'"', b"\\") else char


def _named_in_broken(raw: bytes) -> str | None:
    """The profile an input that is not JSON (a trailing comma, a NaN, cut short) still plainly
    names, found by pattern: its raw bytes are kept encrypted under that profile's key and go with
    an erasure (SPEC §6), as those of an input that parses. When in doubt, encrypting under some
    profile's key errs on the side of privacy; the reject's id stays unread (null), as answered."""
    def string(pattern: re.Pattern[bytes], text: bytes) -> str | None:
        found = pattern.search(text)
        if found is None:
            return None
        try:
            return msgspec.json.decode(b'"' + found.group(1) + b'"', type=str)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    raw = _ESCAPED_ASCII.sub(_unescaped, raw)
    customer = string(_CUSTOMER, raw)
    if customer:
        return customer
    repr_customer = _REPR_CUSTOMER.search(raw)
    if repr_customer is not None:
        try:
            customer = repr_customer.group(1).replace(b"\\'", b"'").replace(b"\\\\", b"\\").decode("utf-8")
        except UnicodeDecodeError:
            customer = None
        if customer:
            return customer
    identity = _IDENTITY.search(raw)
    if identity is not None:
        channel, handle = string(_CHANNEL, identity.group(1)), string(_HANDLE, identity.group(1))
        if channel is not None and handle is not None:
            channel, handle = normalise_identity(channel, handle)
            if handle:
                return f"~{channel}:{handle}"
    return None


def _whose(raw: bytes, depth: int = 0) -> tuple[str | None, str | None]:
    """(the id, the profile key) a raw input names, if it can be read at all. An event sent as a
    JSON string of itself (encoded twice, a common producer bug) names whom its inside names."""
    try:
        sniffed = _sniff.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # skipping deep nesting recurses too
        inside = _string_of(raw) if depth < 3 else None
        return (None, _whose(inside.encode("utf-8"), depth + 1)[1]) if inside else (None, _named_in_broken(raw))
    event_id = sniffed.id if isinstance(sniffed.id, str) else None
    if isinstance(sniffed.customer, str) and sniffed.customer:
        return event_id, sniffed.customer
    ident = sniffed.identity
    if isinstance(ident, dict) and isinstance(ident.get("channel"), str) and isinstance(ident.get("handle"), str):
        channel, handle = normalise_identity(ident["channel"], ident["handle"])
        if handle:
            return event_id, f"~{channel}:{handle}"
    return event_id, None
