"""Ingest: parse → decide → commit, shared by the NATS and HTTP paths (SPEC §2: same outcomes).

The log has one writer. Every batch, whichever path it came by, is committed off the event loop
(directly on a thread of its own, or through the writer process of engine/writer.py), so the
loop keeps serving while SQLite fsyncs, and decisions never race. Submissions that arrive while
a commit is running wait for it and are then committed together (group commit): a hundred
concurrent single-event POSTs cost one fsync, not a hundred.

With the writer process, two groups are in flight at once: the next group is already on its way
while the writer commits one, so the writer does not sit idle while the engine answers the last
group and encodes the next. Groups are sent on one thread and received on another, each in
order, so the writer decides them in arrival order. If a group fails, the writer has exited
without reading the one sent after it: that one fails too, and neither is acknowledged.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from commands.outcomes import Accepted, Duplicate, Outcome, Redelivered, Rejected
from engine.received import Received

GROUP_LIMIT = 4096  # inputs merged into one transaction at most
IN_FLIGHT = 2  # groups handed to a writer process and not yet answered, at most


class Committer(Protocol):
    """What ingest commits through: a `Log` on ingest's own thread, or the writer process that
    `engage up` runs (engine/writer.py)."""

    def commit(self, batch: Sequence[Received]) -> list[Outcome]: ...

    def close(self) -> None: ...


@runtime_checkable
class Pipelined(Protocol):
    """A committer whose commit comes in two halves (engine.writer.WriterProcess)."""

    def send(self, batch: Sequence[Received]) -> Any: ...

    def receive(self, ticket: Any) -> list[Outcome]: ...


class _Submission:
    def __init__(self, items: Sequence[Received], path: str) -> None:
        self.items = items
        self.path = path
        self.done: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()


class Ingest:
    def __init__(self, log: Committer) -> None:
        self.log = log
        self._pipe = log if isinstance(log, Pipelined) else None
        self._depth = 1 if self._pipe is None else IN_FLIGHT
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engage-writer")
        self._receiver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engage-writer-answers")
        self._waiting: list[_Submission] = []
        self._in_flight = 0
        self._last_answered = 0.0  # perf_counter() when the last group's outcomes came back
        self._sending: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (path, outcome or reason) -> n
        # For /health: why the last group failed (cleared by the next commit), and since when the
        # oldest group in flight waits for the log (a hung disk, a stopped writer).
        self.failure: str | None = None
        self.failures = 0
        self._sent: deque[float] = deque()  # monotonic() when each group in flight was handed on
        # Called after each committed group with (seconds the commit took, inputs in it): metrics.
        self.on_commit: list[Callable[[float, int], None]] = []

    async def submit(self, items: Sequence[Received], path: str) -> list[Outcome]:
        """Commit the outcomes of `items` durably; only then return them (to ack or to answer).
        Raises when nothing could be committed: the caller must not acknowledge."""
        if not items:
            return []
        submission = _Submission(items, path)
        self._waiting.append(submission)
        self._send_soon()
        return await submission.done

    def _send_soon(self) -> None:
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send_waiting())

    async def _send_waiting(self) -> None:
        """Hand waiting groups on, in arrival order, while fewer than `_depth` are in flight."""
        loop = asyncio.get_running_loop()
        while self._waiting and self._in_flight < self._depth:
            group = self._take_group()
            inputs = [item for submission in group for item in submission.items]
            started = time.perf_counter()
            self._in_flight += 1
            self._sent.append(time.monotonic())
            answer: asyncio.Future[list[Outcome]]
            if self._pipe is not None:
                try:
                    ticket = await loop.run_in_executor(self._sender, self._pipe.send, inputs)
                except Exception as e:
                    self._in_flight -= 1
                    self._sent.popleft()
                    self._failed(group, e)
                    continue
                # Submitted to the one receiving thread now, so answers are read in sending order.
                answer = loop.run_in_executor(self._receiver, self._pipe.receive, ticket)
            else:
                answer = loop.run_in_executor(self._sender, self.log.commit, inputs)
            finishing = asyncio.create_task(self._finish(group, len(inputs), answer, started))
            self._finishing.add(finishing)
            finishing.add_done_callback(self._finishing.discard)

    async def _finish(self, group: list[_Submission], size: int, answer: asyncio.Future[list[Outcome]],
                      started: float) -> None:
        try:
            outcomes = await answer
        except Exception as e:  # nothing of the group was committed: every caller learns it
            self._failed(group, e)
            return
        finally:
            self._in_flight -= 1
            self._sent.popleft()  # answers come back in sending order
            self._send_soon()
        self.failure = None
        # The commit began when the group was sent or when the group ahead of it was answered,
        # whichever came later: time queued behind that one is not this one's commit.
        answered = time.perf_counter()
        began, self._last_answered = max(started, self._last_answered), answered
        for observe in self.on_commit:
            observe(answered - began, size)
        start = 0
        for submission in group:
            mine = outcomes[start:start + len(submission.items)]
            start += len(submission.items)
            for outcome in mine:
                self.outcomes[(submission.path, outcome_name(outcome))] += 1
            if not submission.done.done():  # a caller that gave up still had its outcomes committed
                submission.done.set_result(mine)

    def _failed(self, group: list[_Submission], error: Exception) -> None:
        self.failure = str(error) or type(error).__name__
        self.failures += 1
        _fail(group, error)

    def waiting_for_log(self) -> float:
        """Seconds the oldest group in flight has waited for its commit; 0 when none is in flight."""
        return time.monotonic() - self._sent[0] if self._sent else 0.0

    def _take_group(self) -> list[_Submission]:
        """The waiting submissions in arrival order, up to GROUP_LIMIT inputs (at least one)."""
        group: list[_Submission] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0].items) <= GROUP_LIMIT):
            submission = self._waiting.pop(0)
            group.append(submission)
            size += len(submission.items)
        return group

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        self._receiver.shutdown(wait=True)
        self.log.close()


def _fail(group: list[_Submission], error: Exception) -> None:
    for submission in group:
        if not submission.done.done():
            submission.done.set_exception(error)


def outcome_name(outcome: Outcome) -> str:
    if isinstance(outcome, Accepted):
        return "accepted"
    if isinstance(outcome, Duplicate):
        return "duplicate"
    if isinstance(outcome, Redelivered):
        return "redelivered"
    assert isinstance(outcome, Rejected)
    return outcome.reason
