"""Read models built again from the log (SPEC §8): `rebuild` replaces the live ones, `replay` builds
those of an earlier point, beside the log as it stood then, in a directory of their own.

Both fold the log with the runner's own Projector: one fold, so replaying the whole log gives
exactly the live projections.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from commands.instants import rfc3339
from engine import readahead
from engine.children import alive
from engine.datalock import DataBusy, DataLock
from engine.log import EVENTS_TABLE, SHREDDED, Log, LogError, read_only_uri
from engine.settings import REPLAY_MARKER, Damaged, UsageError
from ops.audit import LOG_FILE, open_log
from projections.projector import PAGE, Projector
from projections.runner import status_file
from projections.store import VERSION, instant, sortable

READ_FILE = "read.sqlite"

Progress = Callable[[int], None]


class _Record(msgspec.Struct):
    position: int
    recorded_at: datetime


_record = msgspec.json.Decoder(_Record)


class _Hashed(msgspec.Struct):
    hash: str


_hashed = msgspec.json.Decoder(_Hashed)


# --- rebuild -----------------------------------------------------------------------------------------


def rebuild(data: Path, progress: Progress = lambda n: None) -> int:
    """Fold the whole log into `read.sqlite.rebuild` beside the live file, then put it in place in one
    rename. Refused while an engine runs on `data` (its runner writes the live file), and holds the
    data lock meanwhile so none starts. A rebuild killed midway carries on from its last commit.
    Returns the position reached."""
    log = open_log(data)
    try:
        with _data_locked(data):
            target = data / READ_FILE
            partial = data / f"{READ_FILE}.rebuild"
            if not _resumable(partial, log):
                _remove_database(partial)
            projector = Projector(partial, bulk=True)
            try:
                position = _fold(projector, log, log.head.position, progress)
            finally:
                projector.close()
            _install(partial, target)
            status_file(target).unlink(missing_ok=True)  # what a stuck runner said is about the old file
            return position
    finally:
        log.close()


@contextlib.contextmanager
def _data_locked(data: Path) -> Iterator[None]:
    lock = DataLock(data)
    try:
        lock.acquire()
    except DataBusy:
        raise UsageError(f"an engine is running on {data}: stop the engine on {data} first") from None
    try:
        yield
    finally:
        lock.release()


def _resumable(partial: Path, log: Log) -> bool:
    """A rebuild left by a kill carries on when it is a prefix of this log: the chain hash of its
    last folded record is the hash of the log's record at that position (the hash covers the whole
    prefix, SPEC §8), and its layout is this version's."""
    if not partial.exists():
        return False
    try:
        con = sqlite3.connect(partial)
        try:
            if int(con.execute("PRAGMA user_version").fetchone()[0]) != VERSION:
                return False
            row = con.execute("SELECT position, hash FROM tracking WHERE name='read-models'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False  # not a read model we can trust: start again
    if row is None:
        return True
    position, folded = int(row[0]), row[1]
    if position > log.head.position:
        return False
    return bool(folded == _hashed.decode(log.records(position - 1, 1)[0]).hash)


def _install(partial: Path, target: Path) -> None:
    """Replace the live read models in one rename; a reader sees the old file or the new one."""
    _settle(partial)
    if target.exists():
        # The old file's WAL must not outlive it: beside the new file, SQLite would replay it.
        # Checkpointed first, so that a crash right after the unlink leaves the old file whole.
        with contextlib.suppress(sqlite3.Error):  # a damaged old file is what a rebuild is for
            _settle(target)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(partial, target)
    _fsync_directory(target.parent)


def _settle(path: Path) -> None:
    """Checkpoint the WAL into the main file and fsync it: the file alone is then the database."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _fsync(path)


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- replay --------------------------------------------------------------------------------------------


def replay(data: Path, into: Path, *, to_position: int | None = None, to_time: datetime | None = None,
           progress: Progress = lambda n: None) -> int:
    """Build into `into` the read models of the log up to `to_position` (inclusive), or up to the last
    record recorded at or before `to_time`, with `log.sqlite` as the log stood then (without keys:
    see `_copy_log`) and a `REPLAY` marker (`engage up` serves such a directory only with
    `--read-only`). Returns the position.

    The directory is built beside `into` and renamed into place: it appears whole or not at all."""
    if (to_position is None) == (to_time is None):
        raise UsageError("give one of --to-position N or --to-time T")
    into = into.absolute()
    _check_new_directory(into)
    log = open_log(data)
    opened = datetime.now(UTC)  # the log's head as it is read now: what "the whole log" means
    try:
        position = _replay_position(log, data, to_position, to_time)
        recorded_at = _recorded_at(log, position)
        # The rejects kept go by time: up to T; for the whole log, every one kept until now, as the
        # live answers count them (rejects received after the last event accepted included); else
        # up to the recording of the last event kept.
        if to_time is not None:
            cutoff = to_time
        elif position == log.head.position:
            cutoff = opened
        else:
            cutoff = recorded_at
        try:
            into.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_builds(into)
            build = Path(tempfile.mkdtemp(prefix=f"{_build_prefix(into)}{os.getpid()}-", dir=into.parent))
        except OSError as e:
            raise UsageError(f"cannot write to {into.parent}: {e.strerror}") from e
        try:
            projector = Projector(build / READ_FILE, bulk=True)
            try:
                _fold(projector, log, position, progress)
            finally:
                projector.close()
            _settle(build / READ_FILE)
            _copy_log(data / LOG_FILE, build / LOG_FILE, position, cutoff, build / READ_FILE)
            marker = {"source": str(data.absolute()), "to_position": to_position,
                      "to_time": None if to_time is None else rfc3339(to_time), "position": position,
                      "recorded_at": rfc3339(recorded_at), "created_at": rfc3339(datetime.now(UTC))}
            (build / REPLAY_MARKER).write_bytes(msgspec.json.format(msgspec.json.encode(marker)) + b"\n")
            _fsync(build / REPLAY_MARKER)
            _fsync_directory(build)
            try:
                os.rename(build, into)  # onto a missing or empty directory only
            except OSError as e:
                raise UsageError(f"--into {into}: {e.strerror}; give a new or empty directory") from e
            _fsync_directory(into.parent)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        return position
    finally:
        log.close()


def _build_prefix(into: Path) -> str:
    """Where a replay into `into` is built: a hidden directory beside it, named after the
    replaying process (`.NAME.replay-PID-RANDOM`)."""
    return f".{into.name}.replay-"


def _remove_abandoned_builds(into: Path) -> None:
    """Build directories of replays into the same place whose process is gone (killed before it
    could clean up): nothing will ever finish them."""
    prefix = _build_prefix(into)
    for left in into.parent.glob(glob.escape(prefix) + "*"):
        pid = left.name[len(prefix):].partition("-")[0]
        if left.is_dir() and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)


def _check_new_directory(into: Path) -> None:
    if into.exists() and not into.is_dir():
        raise UsageError(f"--into {into} is a file: give a new or empty directory")
    if into.is_dir() and any(into.iterdir()):
        held = [name for name in (LOG_FILE, READ_FILE) if (into / name).exists()]
        what = f"already holds {' and '.join(held)}" if held else "is not empty"
        raise UsageError(f"--into {into} {what}: give a new or empty directory")


def _replay_position(log: Log, data: Path, to_position: int | None, to_time: datetime | None) -> int:
    head = log.head.position
    if head == 0:
        raise UsageError(f"the log at {data} is empty: nothing to replay")
    if to_position is not None:
        if to_position < 1:
            raise UsageError(f"--to-position {to_position}: positions start at 1")
        if to_position > head:
            raise UsageError(f"--to-position {to_position} is beyond the log's head at position {head}")
        return to_position
    assert to_time is not None
    first = _recorded_at(log, 1)
    if to_time < first:
        raise UsageError(f"--to-time {rfc3339(to_time)} is before the first record, recorded at {rfc3339(first)}")
    # recorded_at never decreases along positions (engine/log.py keeps the clock monotonic): bisect.
    low, high = 1, head  # recorded_at(low) <= to_time throughout
    while low < high:
        middle = (low + high + 1) // 2
        if _recorded_at(log, middle) <= to_time:
            low = middle
        else:
            high = middle - 1
    return low


def _recorded_at(log: Log, position: int) -> datetime:
    return _record.decode(log.records(position - 1, 1)[0]).recorded_at


def _copy_log(source: Path, target: Path, position: int, cutoff: datetime, read_models: Path) -> None:
    """The log as it stood at `position`: a new log file holding the source's rows up to it, read in
    one transaction (one snapshot, even while an engine appends to the source).

    Positional tables are cut by position, rejects by time. The write side's decision state (case
    states, identity links in force) is the fold of the events kept, which the replayed read models
    already hold: the same `commands.cases.apply`, the same latest-link rule.

    No key is copied: personal fields stay ciphertext in a replay (read them in the live directory).
    A copy with keys would keep a customer readable after a later erasure, which must reach every
    copy (SPEC §6); the chain, the export and the read API need none."""
    Log(target).close()  # the schema and the durability settings of a log, as engine/log.py makes them
    # URIs (percent-encoded by as_uri): the source is attached read-only.
    con = sqlite3.connect(target.absolute().as_uri(), uri=True, isolation_level=None)
    try:
        con.create_function("sortable", 1, lambda text: sortable(datetime.fromisoformat(text)), deterministic=True)
        con.execute("ATTACH DATABASE ? AS source", (read_only_uri(source),))
        con.execute("ATTACH DATABASE ? AS replayed", (str(read_models),))
        con.execute("BEGIN IMMEDIATE")
        # rowid is the notification id, which engine/log.py checks equals the position.
        con.execute(f"INSERT INTO {EVENTS_TABLE} (rowid, originator_id, originator_version, topic, state) "
                    f"SELECT rowid, originator_id, originator_version, topic, state FROM source.{EVENTS_TABLE} "
                    "WHERE rowid <= ? ORDER BY rowid", (position,))
        # Without the keys, a digest of personal fields is all that is left of them in the copy, and
        # one that a later erasure would not reach: the copy keeps only the others' digests. (A
        # source of the layout before key_id keeps none; a replay decides nothing with them.)
        if "key_id" in {row[1] for row in con.execute("PRAGMA source.table_info(event_ids)")}:
            con.execute("INSERT INTO event_ids (id, digest, position, key_id) SELECT id, CASE WHEN key_id IS NULL "
                        "THEN digest ELSE ? END, position, key_id FROM source.event_ids WHERE position <= ?",
                        (SHREDDED, position))
        else:
            con.execute("INSERT INTO event_ids (id, digest, position) SELECT id, ?, position FROM source.event_ids "
                        "WHERE position <= ?", (SHREDDED, position))
        con.execute("INSERT INTO erased SELECT * FROM source.erased WHERE position <= ?", (position,))
        con.execute("INSERT INTO rejects SELECT * FROM source.rejects WHERE sortable(received_at) <= ? ORDER BY seq",
                    (sortable(cutoff),))
        con.execute("INSERT INTO cases SELECT case_id, body FROM replayed.cases")
        # The links in force: each identity's link in its current epoch (erasure ends an epoch).
        links = con.execute(
            "SELECT l.channel, l.handle, l.customer, l.occurred_at, l.event_id FROM replayed.links l "
            "LEFT JOIN replayed.epochs e ON e.channel = l.channel AND e.handle = l.handle "
            "WHERE l.epoch = coalesce(e.epoch, 0)").fetchall()
        con.executemany("INSERT INTO links VALUES (?,?,?,?,?)",
                        [(ch, h, customer, rfc3339(instant(at)), event_id) for ch, h, customer, at, event_id in links])
        con.execute("COMMIT")
    finally:
        con.close()
    try:
        Log(target, create=False).close()  # what `engage verify` and `up --read-only` will open
    except LogError as e:
        raise RuntimeError(f"the replayed log does not open: {e}") from e
    _settle(target)


# --- shared ----------------------------------------------------------------------------------------------


def _fold(projector: Projector, log: Log, upto: int, progress: Progress) -> int:
    """Fold the log from the projector's position up to `upto`, a page per transaction. Spans are
    swept once at the end (`respan`), as the runner does when it catches up."""
    position = projector.position
    progress(position)
    try:
        for page in readahead.pages(log.path, position, upto, PAGE):  # read while the last page folds
            position = projector.apply(page, respan=False)
            progress(position)
    # The log file is not right (exit 1), not the user's mistake (2).
    except RuntimeError as e:  # a position jumped: a row is missing from the log file
        raise Damaged(f"{e} in {log.path}: run engage verify --data {log.path.parent}") from e
    except LogError as e:
        raise Damaged(f"{e}: run engage verify --data {log.path.parent}") from e
    if position < upto:
        raise Damaged(f"the log at {log.path} ends at position {position}, before {upto}: "
                      f"run engage verify --data {log.path.parent}")
    projector.apply([], respan=True)
    return position


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    """A rename is durable once its directory is."""
    _fsync(path)
