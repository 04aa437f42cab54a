"""Ingest: parse → decide → commit, shared by the NATS and HTTP paths (SPEC §2: same outcomes).

The log has one writer. Every batch, whichever path it came by, is committed on one dedicated
thread, so the event loop keeps serving while SQLite fsyncs, and decisions never race.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from commands.outcomes import Accepted, Duplicate, Outcome, Rejected
from engine.log import Log
from engine.received import Received


class Ingest:
    def __init__(self, log: Log) -> None:
        self.log = log
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engage-writer")
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (path, outcome or reason) -> n
        self.batch_seconds: list[float] = []  # recent commit latencies, for metrics

    async def submit(self, items: Sequence[Received], path: str) -> list[Outcome]:
        """Commit the outcomes of `items` durably; only then return them (to ack or to answer)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        outcomes = await loop.run_in_executor(self._writer, self.log.commit, items)
        self.batch_seconds = [*self.batch_seconds[-255:], time.perf_counter() - started]
        for outcome in outcomes:
            self.outcomes[(path, outcome_name(outcome))] += 1
        return outcomes

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.log.close()


def outcome_name(outcome: Outcome) -> str:
    if isinstance(outcome, Accepted):
        return "accepted"
    if isinstance(outcome, Duplicate):
        return "duplicate"
    assert isinstance(outcome, Rejected)
    return outcome.reason
