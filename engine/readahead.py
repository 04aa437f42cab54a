"""The log read a page ahead, in a process of its own, while the caller folds the page before.

Reading the log through the recorder (`Log.pages`: a Notification and a UUID per record) costs
about as much as a bulk fold's own work per record, and both hold the GIL: in one process they
take turns. A reader process (`python -m engine.readahead`) overlaps them. It writes frames
(engine/frames.py: a page as a msgpack list of records; then an end frame, or an error) to a pipe
whose buffer keeps it at most a page or two ahead, so memory stays flat however long the log.
Used by `engage rebuild` and `engage replay`; the live runner reads a page at a time as the log grows.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import IO

import msgspec

from engine.children import die_with_parent
from engine.frames import read_frame, write_frame
from engine.log import Log, LogError


class _End(msgspec.Struct, tag=True):
    error: str | None = None  # None: every record asked for was sent


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[bytes] | _End)


def pages(log_path: Path, after: int, upto: int, page: int) -> Generator[list[bytes], None, None]:
    """The records after `after` up to `upto` (inclusive), a page at a time, read by a child
    process. A failure to read the log raises LogError here; leaving early stops the reader."""
    reader = subprocess.Popen(
        [sys.executable, "-m", "engine.readahead", str(log_path), str(after), str(upto), str(page)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=die_with_parent(os.getpid()),
    )
    assert reader.stdout is not None
    try:
        while True:
            try:
                frame = read_frame(reader.stdout)
            except EOFError:
                frame = None
            if frame is None:
                raise LogError(f"the reader of {log_path} exited (code {reader.wait()}) before the end")
            item = _decoder.decode(frame)
            if isinstance(item, _End):
                if item.error is not None:
                    raise LogError(item.error)
                return
            yield item
    finally:
        reader.stdout.close()
        if reader.poll() is None:
            reader.terminate()  # only when the caller stopped early: the reader waits on a full pipe
        reader.wait()


def serve(log_path: Path, after: int, upto: int, page: int, out: IO[bytes]) -> None:
    try:
        log = Log(log_path, create=False)
        try:
            for records in log.pages(after, upto, page):
                write_frame(out, _encoder.encode(records))
        finally:
            log.close()
        end = _End()
    except BrokenPipeError:
        return  # the caller stopped reading
    except Exception as e:  # whatever it is, the caller raises it as a LogError naming the file
        end = _End(str(e) if isinstance(e, LogError) else f"reading {log_path} failed: {e!r}")
    with contextlib.suppress(BrokenPipeError):
        write_frame(out, _encoder.encode(end))


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.readahead LOG AFTER UPTO PAGE`: what `pages` starts."""
    log_path, after, upto, page = (argv if argv is not None else sys.argv[1:])
    serve(Path(log_path), int(after), int(upto), int(page), sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
