"""Audit tools of SPEC §8: export the log as JSON Lines and verify the chain, from a data directory
or from an export file, with no trust in the code that wrote it."""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from commands.touchpoints import PERSONAL_FIELDS
from engine.chain import ZERO_HASH, Broken, Verified, verify_chain
from engine.keys import decrypt_text, key_id_of
from engine.log import Log, LogDamaged, LogError, damaged
from engine.settings import UsageError

LOG_FILE = "log.sqlite"


def open_log(data: Path) -> Log:
    """The log of an existing data directory (never creates one in a mistyped place)."""
    path = data / LOG_FILE
    if not path.is_file():
        raise UsageError(f"no log at {path}: is --data the directory `engage up` uses?")
    try:
        return Log(path, create=False)
    except LogDamaged:
        raise  # not the user's mistake: the file
    except LogError as e:
        raise UsageError(str(e)) from e


def verify_data(data: Path, progress: Callable[[int], None] = lambda n: None, *,
                reaching: str | None = None) -> Verified:
    """The chain as the data directory's log holds it. A damaged file is a break too: at the
    first record that cannot be read."""
    try:
        log = open_log(data)
    except LogDamaged as e:
        return Verified(0, ZERO_HASH, Broken(1, str(e)))
    try:
        damage: list[Exception] = []
        checked = verify_chain(_counted(_readable(log.iter_records(), damage), progress), reaching)
        if damage and (checked.broken is None or checked.broken.position > checked.records):
            return Verified(checked.records, checked.head_hash, Broken(
                checked.records + 1, f"records from here on cannot be read: the log file is damaged ({damage[0]}); "
                                     "restore it from a backup"))
        return checked
    finally:
        log.close()


def _readable(records: Iterator[bytes], damage: list[Exception]) -> Iterator[bytes]:
    """The records up to the first that the damaged file does not give; that error into `damage`."""
    try:
        yield from records
    except Exception as e:
        if not damaged(e):
            raise
        damage.append(e)


def verify_file(path: Path, progress: Callable[[int], None] = lambda n: None, *,
                reaching: str | None = None) -> Verified:
    """An export, from a file or (`-`) from standard input."""
    if str(path) == "-":
        return verify_chain(_counted(_records(sys.stdin.buffer), progress), reaching)
    try:
        with path.open("rb") as lines:
            return verify_chain(_counted(_records(lines), progress), reaching)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e


def _records(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of an export, without the blank ones at its end (an editor's last newline). A
    blank line between records is passed on, where the chain calls it a break: one record a line."""
    blank = 0
    for line in lines:
        if not line.strip():
            blank += 1
            continue
        if blank:
            yield b""
            return
        yield line


def export(data: Path, out: IO[bytes], *, decrypt: bool = False,
           progress: Callable[[int], None] = lambda n: None) -> int:
    """Write every record in position order; with `decrypt`, readable personal fields go under a
    `personal` member, outside the hash (SPEC §8)."""
    log = open_log(data)
    try:
        with log.snapshot() as snapshot:  # records and keys of one instant (see Log.snapshot)
            count = 0
            try:
                for count, line in enumerate(snapshot.iter_records(), start=1):
                    out.write(with_personal(line, snapshot.key) if decrypt else line)
                    out.write(b"\n")
                    progress(count)
            except Exception as e:
                if not damaged(e):
                    raise
                raise LogDamaged(f"the log file is damaged after record {count} ({e}): restore it from a backup; "
                                 f"engage verify --data {data} says where") from e
            return count
    finally:
        log.close()


def export_to_file(data: Path, target: Path, **options: Any) -> int:
    """Written beside the target and renamed into place: a reader never sees half an export."""
    target = target.resolve()
    if target.is_dir():
        raise UsageError(f"-o {target} is a directory: name the file to write, e.g. {target / 'export.jsonl'}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as e:
        raise UsageError(f"cannot write to {target.parent}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as out:
            count = export(data, out, **options)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        return count
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def personal_reader(lookup: Callable[[str], Any]) -> Callable[[str], str | None]:
    """A stored personal field -> its plain value, or None once its key is destroyed."""

    def read(value: str) -> str | None:
        key_id = key_id_of(value)
        aead = lookup(key_id) if key_id else None
        return None if aead is None else decrypt_text(aead, value)

    return read


def with_personal(line: bytes, lookup: Callable[[str], Any]) -> bytes:
    record = msgspec.json.decode(line)
    data = record["event"].get("data") or {}
    personal: dict[str, str | None] = {}
    for name in sorted(PERSONAL_FIELDS.intersection(data)):
        key_id = key_id_of(data[name])
        aead = lookup(key_id) if key_id else None
        personal[name] = None if aead is None else decrypt_text(aead, data[name])
    if not personal:
        return line
    record["personal"] = personal
    return msgspec.json.encode(record)


def _counted(lines: Iterable[bytes], progress: Callable[[int], None]) -> Iterator[bytes]:
    for n, line in enumerate(lines, start=1):
        progress(n)
        yield line
