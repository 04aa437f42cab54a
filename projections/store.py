"""The read models' SQLite file: its tables, and instants stored so that text order is time order.

The runner writes it (one transaction per page of the log, tracking position included); the API
reads it through aiosqlite. It lives next to the log (`read.sqlite`) and is rebuilt from the log
at will: nothing in it is a record of its own. Personal fields stay ciphertext here, as in the log.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

# Fixed width, microseconds always: comparing the text compares the instants.
BEGINNING = "0001-01-01T00:00:00.000000Z"
END = "9999-12-31T23:59:59.999999Z"

SCHEMA = [
    # How far the fold has read the log, and the chain hash of the record there (SPEC §8): a
    # rebuild resumes only on the log it started from.
    "CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position INTEGER NOT NULL, hash TEXT)",
    # Who sent each event: a customer, or an identity in an epoch (projections/directory.py), and
    # the profile its events belong to now (NULL once that is an erased customer).
    "CREATE TABLE IF NOT EXISTS origins (oid INTEGER PRIMARY KEY, customer TEXT, channel TEXT, handle TEXT, "
    "epoch INTEGER NOT NULL, owner TEXT, UNIQUE (customer, channel, handle, epoch))",
    "CREATE INDEX IF NOT EXISTS origins_by_owner ON origins(owner)",
    # An identity's origins (the UNIQUE index above leads with the customer, NULL for these).
    "CREATE INDEX IF NOT EXISTS origins_by_identity ON origins(channel, handle, epoch) WHERE channel IS NOT NULL",
    # What the folds need of each event. The record itself stays in the log: the timeline and
    # `engage history` read it there by position (the log's rowid).
    "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL, "
    "occurred_at TEXT NOT NULL, oid INTEGER NOT NULL, rung INTEGER, weight REAL, detail TEXT)",
    "CREATE INDEX IF NOT EXISTS events_by_origin ON events(oid, occurred_at, id, type, rung, weight, detail)",
    # A profile's latest consent per purpose as of T, for the /customers?marketing= filter (which
    # names it: the planner would take the covering index above).
    "CREATE INDEX IF NOT EXISTS events_consent ON events(oid, occurred_at) WHERE type = 'consent.changed'",
    "CREATE TABLE IF NOT EXISTS links (channel TEXT NOT NULL, handle TEXT NOT NULL, epoch INTEGER NOT NULL, "
    "customer TEXT NOT NULL, occurred_at TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (channel, handle, epoch))",
    "CREATE TABLE IF NOT EXISTS epochs (channel TEXT NOT NULL, handle TEXT NOT NULL, epoch INTEGER NOT NULL, "
    "PRIMARY KEY (channel, handle))",
    "CREATE TABLE IF NOT EXISTS erased (customer TEXT PRIMARY KEY, position INTEGER NOT NULL)",
    # The profiles that exist (SPEC §7): erased customers and linked identities are not here.
    "CREATE TABLE IF NOT EXISTS profiles (key TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS cases (case_id TEXT PRIMARY KEY, oid INTEGER NOT NULL, state TEXT NOT NULL, "
    "priority TEXT NOT NULL, agent TEXT, team TEXT, body BLOB NOT NULL, "
    "first_response_breached_from TEXT, resolution_breached_from TEXT)",
    # A profile's cases (GET /customers/{key} scanned every case: 2.8 ms at 1M events, growing with
    # the log), the counts by state and by breach of /stats, and /cases?state=.
    "CREATE INDEX IF NOT EXISTS cases_by_oid ON cases(oid)",
    "CREATE INDEX IF NOT EXISTS cases_by_state ON cases(state, case_id)",
    "CREATE INDEX IF NOT EXISTS cases_by_first_response_breach ON cases(first_response_breached_from)",
    "CREATE INDEX IF NOT EXISTS cases_by_resolution_breach ON cases(resolution_breached_from)",
    # Each profile's engagement and advocacy as piecewise-constant spans [start, end) of the
    # as_of instant, so statistics and filters for any T are one indexed query, not a refold.
    "CREATE TABLE IF NOT EXISTS engagement_spans (profile TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL, "
    "level TEXT NOT NULL, observed TEXT, stated TEXT, PRIMARY KEY (profile, start))",
    # The span indexes carry the values counted, so that counting the spans that contain a T (the
    # counts far from their anchor) reads no table row: /stats a month back took 60 ms, now 20 ms.
    "CREATE INDEX IF NOT EXISTS engagement_spans_ending ON engagement_spans(end, start, level, observed, stated)",
    "CREATE TABLE IF NOT EXISTS advocacy_spans (profile TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL, "
    "tier TEXT NOT NULL, PRIMARY KEY (profile, start))",
    "CREATE INDEX IF NOT EXISTS advocacy_spans_ending ON advocacy_spans(end, start, tier)",
    # Counts per level, tier, observed and stated rung at an anchor instant (projections/counts.py).
    "CREATE TABLE IF NOT EXISTS span_counts (kind TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL, "
    "PRIMARY KEY (kind, value))",
    "CREATE TABLE IF NOT EXISTS span_anchor (one INTEGER PRIMARY KEY CHECK (one = 1), instant TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS engagement_spans_starting ON engagement_spans(start, end, level, observed, stated)",
    "CREATE INDEX IF NOT EXISTS advocacy_spans_starting ON advocacy_spans(start, end, tier)",
    # Profiles whose spans wait to be recomputed: while catching up, each is swept once at the end.
    # `since`: the sort key (projections/spans.py) of the first event to fold, '' for the whole history.
    "CREATE TABLE IF NOT EXISTS dirty (profile TEXT PRIMARY KEY, since TEXT NOT NULL)",
    # Each profile's folds after its last event as of the last sweep (spans.Resume), from which a
    # sweep respans only what follows.
    "CREATE TABLE IF NOT EXISTS span_state (profile TEXT PRIMARY KEY, last TEXT NOT NULL, resume BLOB NOT NULL)",
]


# The layout above. A read model of another version is dropped and folded again from the log
# (it holds nothing of its own); `engage up --read-only` serves an older one as it is.
# 3: an identity gets its origin row when it is linked, so its customer lists it before it carries
# an event.
# 4: an advocacy span changes tier at the microsecond score() does; it could be one late, so lists
# and /stats disagreed with the profile for that microsecond.
# 5: a profile's folds after its last event are kept (span_state), and dirty marks say from which
# event on to respan: new events that sort after a profile's history no longer refold all of it.
VERSION = 5


# Secondary indexes that only readers need: a bulk fold (a rebuild or a replay into a file nobody
# reads yet) drops them and builds them once at its end, which is ~10 µs an event cheaper than
# keeping them up to date row by row. The span sweep itself reads through primary keys and
# events_by_origin, which `create_indexes` builds first.
SPAN_INDEXES = ("engagement_spans_ending", "engagement_spans_starting", "advocacy_spans_ending",
                "advocacy_spans_starting")
DEFERRED_INDEXES = ("events_consent", *SPAN_INDEXES, "cases_by_oid", "cases_by_state",
                    "cases_by_first_response_breach", "cases_by_resolution_breach")
FOLD_INDEXES = ("events_by_origin",)
# Indexes of earlier layouts that the ones above replace (same tables, same rows): dropped at connect.
REPLACED_INDEXES = ("engagement_spans_by_end", "engagement_spans_by_start", "advocacy_spans_by_end",
                    "advocacy_spans_by_start")


def drop_indexes(con: sqlite3.Connection, names: tuple[str, ...] = (*FOLD_INDEXES, *DEFERRED_INDEXES)) -> None:
    """The named indexes of SCHEMA (by default every one a bulk fold builds at its end), where present."""
    for name in names:
        con.execute(f"DROP INDEX IF EXISTS {name}")


def create_indexes(con: sqlite3.Connection, names: tuple[str, ...]) -> None:
    """The named indexes of SCHEMA, where missing."""
    for statement in SCHEMA:
        if statement.startswith("CREATE INDEX") and statement.split()[5] in names:
            con.execute(statement)


def sortable(moment: datetime) -> str:
    """`2026-10-01T12:00:00.000000Z` (isoformat, not strftime: this runs for every event folded).
    Decoded instants are UTC already: then the conversion is skipped."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def sortable_text(text: str) -> str:
    """`sortable` of an instant the log wrote (RFC 3339, UTC, `Z`, six fraction digits or none:
    commands/instants.py) without parsing it; any other spelling goes through a datetime."""
    if len(text) == 27 and text[19] == "." and text[26] == "Z":
        return text
    if len(text) == 20 and text[19] == "Z":
        return text[:19] + ".000000Z"
    return sortable(datetime.fromisoformat(text))


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


BUSY_TIMEOUT_MS = 30_000  # how long the runner's statements wait for a lock


def connect(path: Path) -> sqlite3.Connection:
    """The runner's connection: WAL (readers never block it), explicit transactions. Tables of an
    earlier version are dropped first: the runner then folds the log again from position 1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # rebuildable from the log: a lost tail is replayed
    con.execute("PRAGMA secure_delete=ON")
    con.execute("BEGIN IMMEDIATE")
    try:
        if int(con.execute("PRAGMA user_version").fetchone()[0]) != VERSION:
            tables = con.execute("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%'")
            for (table,) in tables.fetchall():
                con.execute(f'DROP TABLE "{table}"')
        for name in REPLACED_INDEXES:
            con.execute(f"DROP INDEX IF EXISTS {name}")
        for statement in SCHEMA:
            con.execute(statement)
        con.execute(f"PRAGMA user_version={VERSION}")
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:  # a failed COMMIT (a full disk) may have ended it: keep its error
            con.execute("ROLLBACK")
        raise
    return con



# The position up to which the read models answer in full: the tracking position, except while
# profiles wait for their span sweep. Only a bulk fold commits pages unswept (the live runner sweeps
# before each commit), and it starts from position 0 and sweeps once at the end: until then its
# answers are partial from the start (levels, tiers and /stats lag behind the events folded), so
# /health shows the whole log as lag rather than 0 while the sweep runs.
ANSWERED = ("SELECT CASE WHEN EXISTS (SELECT 1 FROM dirty) THEN 0 "
            "ELSE coalesce((SELECT position FROM tracking WHERE name='read-models'), 0) END")


def answered(path: Path, *, timeout: float = 30) -> int | None:
    """ANSWERED, read-only; None when there is no file yet. Raises sqlite3.Error when the file
    cannot be read (or holds no read models)."""
    if not path.exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        return int(con.execute(ANSWERED).fetchone()[0])
    finally:
        con.close()


def tracked(path: Path, *, timeout: float = 30) -> tuple[int, str | None] | None:
    """The read models' tracking position and the hash of the record there, read-only; None when
    there is no file or no row yet. Raises sqlite3.Error when the file cannot be read."""
    if not path.exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        row = con.execute("SELECT position, hash FROM tracking WHERE name='read-models'").fetchone()
    finally:
        con.close()
    return None if row is None else (int(row[0]), row[1])


def foreign_to(path: Path, hash_at: Callable[[int], str | None]) -> str | None:
    """Why the read models at `path` were not folded from the log whose record hashes `hash_at`
    gives (None past its head), or None when they were (or hold nothing yet, or are unreadable:
    `connect` says so). A log restored from a backup, or deleted and started afresh, leaves read
    models that stand at a position the log does not have, or at another record there: they
    would answer for events that are not in the log and never fold the ones that are."""
    try:
        row = tracked(path)
    except sqlite3.Error:
        return None
    if row is None or not row[0]:
        return None
    position, folded = row
    found = hash_at(position)
    if found is None:
        return f"they stand at position {position}, past the log's head"
    if folded is not None and found != folded:
        return f"the log's record at position {position} is not the one they folded"
    return None


def remove(path: Path) -> None:
    """The read models' file and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
