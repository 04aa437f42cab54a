"""Group commit: concurrent submissions share a transaction, and each gets exactly its own outcomes."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from commands.outcomes import Accepted, Duplicate, Rejected
from engine.chain import verify
from engine.ingest import Committer, Ingest
from engine.log import Log
from engine.received import Received
from engine.writer import WriterProcess
from tests.integration.engine_process import EngineProcess
from tests.samples import ev

NOW = datetime(2026, 10, 2, tzinfo=UTC)


def _committer(kind: str, path: Path) -> Committer:
    if kind == "log":
        return Log(path)
    writer = WriterProcess(path)  # what `engage up` runs: two groups in flight at once
    writer.start()
    return writer


@pytest.mark.parametrize("kind", ["log", "writer process"])
async def test_concurrent_submissions_get_their_own_outcomes_in_arrival_order(tmp_path: Path, kind: str) -> None:
    ingest = Ingest(_committer(kind, tmp_path / "log.sqlite"))
    commits: list[int] = []
    ingest.on_commit.append(lambda _seconds, size: commits.append(size))
    try:
        def batch(k: int) -> list[Received]:
            return [Received(ev(f"{k}-a", "idea.voted", {"idea": "i"}), "test", NOW),
                    Received(b"junk", "test", NOW),
                    Received(ev(f"{k}-a", "idea.voted", {"idea": "i"}), "test", NOW)]

        results = await asyncio.gather(*(ingest.submit(batch(k), "test") for k in range(40)))
        for outcomes in results:
            assert [type(o) for o in outcomes] == [Accepted, Rejected, Duplicate]
            accepted = outcomes[0]
            assert isinstance(accepted, Accepted) and outcomes[2] == Duplicate(accepted.position)
        assert sorted(o[0].position for o in results) == list(range(1, 41))  # type: ignore[union-attr]
        assert ingest.outcomes[("test", "accepted")] == 40 and ingest.outcomes[("test", "malformed")] == 40
        assert len(commits) < 40 and sum(commits) == 120  # they shared transactions
    finally:
        ingest.close()
    log = Log(tmp_path / "log.sqlite", create=False)
    try:
        assert verify(log.iter_records()) == (40, None)
        # Arrival order is decision order: submission k got position k + 1.
        assert [json.loads(r)["event"]["id"] for r in log.iter_records()] == [f"e-{k}-a" for k in range(40)]
    finally:
        log.close()


async def test_a_hundred_concurrent_single_event_posts_all_land_once(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "data").start()
    try:
        async with httpx.AsyncClient(base_url=eng.http, timeout=60) as client:
            answers = await asyncio.gather(*(
                client.post("/events", content=ev(f"p{k}", "idea.voted", {"idea": "i"}),
                            headers={"content-type": "application/json"}) for k in range(100)))
        assert all(a.status_code == 200 and a.json()["accepted"] == 1 for a in answers)
        assert eng.get("/health").json()["log"]["head"] == 100
    finally:
        eng.kill()
    log = Log(tmp_path / "data" / "log.sqlite", create=False)
    ids = [json.loads(r)["event"]["id"] for r in log.iter_records()]
    log.close()
    assert sorted(ids) == sorted(f"e-p{k}" for k in range(100))
