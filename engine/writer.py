"""The log's single writer in a process of its own: `engage up` commits through it.

Deciding and committing a batch (parse, the checks of SPEC §2, encryption, the hash chain, SQLite)
is Python work under the GIL. In the engine's process it competed with the JetStream consumer and
the HTTP server for that one lock; here it runs on a core of its own while the engine's event loop
fetches the next batch. The engine keeps a read-only `Log` for its reads (exports, rejects, keys for
readable timelines) and learns the head from each reply.

The protocol over the child's stdin and stdout is a frame per message: a 4-byte big-endian length
and msgpack. The child answers "ready" (its head) or why it cannot open the log, then one reply per
batch: the outcomes and the new head, or an error. After an error it exits, so that a writer started
again reads the head afresh; a writer that died (killed, or after an error) is started again by the
next commit. A batch whose reply never came was not acknowledged to anyone: its producers send it
again, and ids make that idempotent (SPEC §2).

The child holds the data directory's lock through an inherited descriptor (`keep_fds`), so a new
engine cannot start on the directory while an old writer is still finishing a transaction.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgspec

from commands.outcomes import Accepted, Duplicate, Outcome, Redelivered, Rejected
from engine import logs
from engine.children import die_with_parent
from engine.frames import read_frame, write_frame
from engine.log import Head, Log, LogDamaged, LogError, file_identity
from engine.received import Received

log = logging.getLogger("engage.writer")

FAULT_ENV = "ENGAGE_WRITER_FAULT"  # tests only: "exit-after-commit"
CLOSE_TIMEOUT = 30.0  # seconds a writer may take to finish its last batch and close


class WriterGone(Exception):
    """The writer process died before it answered: the batch may or may not be committed, so it
    must not be acknowledged (a redelivery is recognised as a duplicate)."""


class _Reply(msgspec.Struct):
    outcomes: list[tuple[int, int, str, str]] = []
    head: Head | None = None
    error: str | None = None
    damaged: bool = False  # the error is the log file's (LogDamaged), not the caller's


_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[Received])
_reply_encoder = msgspec.msgpack.Encoder()
_reply_decoder = msgspec.msgpack.Decoder(_Reply)

_ACCEPTED, _DUPLICATE, _REDELIVERED, _REJECTED = range(4)


def pack(outcome: Outcome) -> tuple[int, int, str, str]:
    if isinstance(outcome, Accepted):
        return (_ACCEPTED, outcome.position, "", "")
    if isinstance(outcome, Duplicate):
        return (_DUPLICATE, outcome.position, "", "")
    if isinstance(outcome, Redelivered):
        return (_REDELIVERED, outcome.seq, "", "")
    return (_REJECTED, 0, outcome.reason, outcome.detail)


def unpack(packed: tuple[int, int, str, str]) -> Outcome:
    kind, number, reason, detail = packed
    if kind == _ACCEPTED:
        return Accepted(number)
    if kind == _DUPLICATE:
        return Duplicate(number)
    if kind == _REDELIVERED:
        return Redelivered(number)
    return Rejected(reason, detail)  # type: ignore[arg-type]  # the child sent a Reason


class WriterProcess:
    """Same face as `Log` for Ingest: `commit(batch)`, `head`, `close()`, and the same commit in
    two halves, `send(batch)` then `receive(ticket)`, so that the next batch can be on its way
    while the writer commits this one (Ingest keeps two in flight: the writer never waits for
    the engine between batches).

    Batches are decided in the order they were sent. Not thread-safe beyond that split: one
    thread sends, one thread receives, in the same order."""

    def __init__(self, path: Path, *, keep_fds: Sequence[int] = ()) -> None:
        self.path = path
        self._keep_fds = tuple(keep_fds)
        self._proc: subprocess.Popen[bytes] | None = None
        self._head: Head | None = None
        self._file: tuple[int, int] | None = None  # the log's (device, inode) once a writer opened it
        self.restarts = 0

    @property
    def head(self) -> Head:
        assert self._head is not None, "start() first"
        return self._head

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def start(self) -> None:
        """Start the writer and wait until it has opened the log. Raises LogError when it cannot.
        Once a log was opened, a writer started again opens that file or nothing: never a new
        empty log in the place of one deleted (it would take positions 1, 2, … again)."""
        if self._file is not None and file_identity(self.path) != self._file:
            raise LogError(f"the log file {self.path} was deleted or replaced while the engine had it open: stop "
                           "the engine and put the log back (or restore it from a backup)")
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.writer", str(self.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=self._keep_fds,
            preexec_fn=die_with_parent(os.getpid()),
        )
        self._proc = proc
        try:
            reply = self._receive(proc)
        except WriterGone as e:
            raise LogError(f"the log writer did not start: {e}") from e
        if reply.error is not None or reply.head is None:
            self._reap(proc)
            if reply.damaged:
                raise LogDamaged(reply.error or "the log is damaged")
            raise LogError(reply.error or "the log writer did not say where the log's head is")
        self._head = reply.head
        if self._file is None:
            self._file = file_identity(self.path)

    def commit(self, batch: Sequence[Received]) -> list[Outcome]:
        return self.receive(self.send(batch))

    def send(self, batch: Sequence[Received]) -> subprocess.Popen[bytes]:
        """Hand `batch` to the writer (starting one if none is running); returns the ticket for
        `receive`. Raises WriterGone when the writer cannot take it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else self._reap(proc)  # its pipes are closed, not left open
            log.error("the log writer exited (code %s); starting it again", code)
            self.restarts += 1
            self.start()
            proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            write_frame(proc.stdin, _batch_encoder.encode(list(batch)))
        except (OSError, ValueError) as e:  # ValueError: the receiver closed the pipe of a writer that failed
            self._reap(proc)
            raise WriterGone(f"the log writer went away: {e}") from e
        return proc

    def receive(self, ticket: subprocess.Popen[bytes]) -> list[Outcome]:
        """The outcomes of the oldest batch sent with this ticket and not yet received, once the
        writer has committed them. Raises WriterGone or LogError when it did not: then that batch
        must not be acknowledged, and neither may any batch sent after it to the same writer
        (a writer exits after an error, without reading further)."""
        reply = self._receive(ticket)
        if reply.error is not None or reply.head is None:
            self._reap(ticket)  # it exits after an error; the next send starts a fresh one
            raise LogError(reply.error or "the log writer answered without a head")
        self._head = reply.head
        return [unpack(packed) for packed in reply.outcomes]

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """End of input: the writer finishes (it is between batches) and closes the log."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _receive(self, proc: subprocess.Popen[bytes]) -> _Reply:
        assert proc.stdout is not None
        try:
            frame = read_frame(proc.stdout)
        except (OSError, EOFError, ValueError) as e:  # ValueError: its pipe was closed by _reap
            self._reap(proc)
            raise WriterGone(f"the log writer went away mid-answer: {e}") from e
        if frame is None:
            code = self._reap(proc)
            raise WriterGone(f"the log writer exited (code {code}) without answering")
        return _reply_decoder.decode(frame)

    def _reap(self, proc: subprocess.Popen[bytes]) -> int | None:
        """This writer is done or broken: make sure it is gone, and forget it if it is current."""
        if self._proc is proc:
            self._proc = None
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            return proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


class FollowingLog(Log):
    """The engine's own view of the log while a WriterProcess writes it: reads come from the file
    (read-only), the head from the writer's latest answer."""

    def __init__(self, path: Path, writer: WriterProcess) -> None:
        super().__init__(path, create=False)
        self._writer = writer

    @property
    def head(self) -> Head:
        return self._writer.head


def serve(path: Path, incoming: IO[bytes], outgoing: IO[bytes]) -> int:
    """The child's loop: open the log, answer ready, then commit batch after batch until EOF."""
    try:
        log_ = Log(path)
    except LogError as e:
        write_frame(outgoing, _reply_encoder.encode(_Reply(error=str(e), damaged=isinstance(e, LogDamaged))))
        return 2
    try:
        write_frame(outgoing, _reply_encoder.encode(_Reply(head=log_.head)))
        while (frame := read_frame(incoming)) is not None:
            batch = _batch_decoder.decode(frame)
            try:
                outcomes = log_.commit(batch)
            except Exception as e:  # nothing of the batch is committed; a fresh writer re-reads the head
                log.exception("commit failed")
                write_frame(outgoing, _reply_encoder.encode(_Reply(error=f"{type(e).__name__}: {e}")))
                return 1
            if os.environ.get(FAULT_ENV) == "exit-after-commit":
                os._exit(9)  # committed, never answered: what a crash at the worst moment looks like
            reply = _Reply(outcomes=[pack(o) for o in outcomes], head=log_.head)
            write_frame(outgoing, _reply_encoder.encode(reply))
        return 0
    finally:
        log_.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.writer LOG`: what WriterProcess starts."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m engine.writer LOG (started by engage up)", file=sys.stderr)
        return 2
    # The engine decides when to stop: Ctrl-C on a terminal reaches the whole process group, and
    # the writer must finish the batch in hand and leave on end of input, not on SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(sys.stderr)  # as the engine's own lines: JSON Lines unless stderr is a terminal
    # Frames only on the real stdout: anything printed by accident goes to stderr instead.
    outgoing = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    incoming = sys.stdin.buffer
    return serve(Path(args[0]), incoming, outgoing)


if __name__ == "__main__":
    sys.exit(main())
