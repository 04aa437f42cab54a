"""Ingest: parse → decide → commit, shared by the NATS and HTTP paths (SPEC §2: same outcomes).

The log has one writer. Every batch, whichever path it came by, is committed from one dedicated
thread (directly, or through the writer process of engine/writer.py), so the event loop keeps
serving while SQLite fsyncs, and decisions never race. Submissions that arrive while a commit is
running wait for it and are then committed together (group commit): a hundred concurrent
single-event POSTs cost one fsync, not a hundred.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from commands.outcomes import Accepted, Duplicate, Outcome, Redelivered, Rejected
from engine.received import Received

GROUP_LIMIT = 4096  # inputs merged into one transaction at most


class Committer(Protocol):
    """What ingest commits through: a `Log` on ingest's own thread, or the writer process that
    `engage up` runs (engine/writer.py)."""

    def commit(self, batch: Sequence[Received]) -> list[Outcome]: ...

    def close(self) -> None: ...


class _Submission:
    def __init__(self, items: Sequence[Received], path: str) -> None:
        self.items = items
        self.path = path
        self.done: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()


class Ingest:
    def __init__(self, log: Committer) -> None:
        self.log = log
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engage-writer")
        self._waiting: list[_Submission] = []
        self._committing: asyncio.Task[None] | None = None
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (path, outcome or reason) -> n
        # Called after each committed group with (seconds the commit took, inputs in it): metrics.
        self.on_commit: list[Callable[[float, int], None]] = []

    async def submit(self, items: Sequence[Received], path: str) -> list[Outcome]:
        """Commit the outcomes of `items` durably; only then return them (to ack or to answer).
        Raises when nothing could be committed: the caller must not acknowledge."""
        if not items:
            return []
        submission = _Submission(items, path)
        self._waiting.append(submission)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_waiting())
        return await submission.done

    async def _commit_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            group = self._take_group()
            inputs = [item for submission in group for item in submission.items]
            started = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(self._writer, self.log.commit, inputs)
            except Exception as e:  # nothing of the group was committed: every caller learns it
                for submission in group:
                    if not submission.done.done():
                        submission.done.set_exception(e)
                continue
            for observe in self.on_commit:
                observe(time.perf_counter() - started, len(inputs))
            start = 0
            for submission in group:
                mine = outcomes[start:start + len(submission.items)]
                start += len(submission.items)
                for outcome in mine:
                    self.outcomes[(submission.path, outcome_name(outcome))] += 1
                if not submission.done.done():  # a caller that gave up still had its outcomes committed
                    submission.done.set_result(mine)

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
        self._writer.shutdown(wait=True)
        self.log.close()


def outcome_name(outcome: Outcome) -> str:
    if isinstance(outcome, Accepted):
        return "accepted"
    if isinstance(outcome, Duplicate):
        return "duplicate"
    if isinstance(outcome, Redelivered):
        return "redelivered"
    assert isinstance(outcome, Rejected)
    return outcome.reason
