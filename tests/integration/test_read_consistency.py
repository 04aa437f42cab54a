"""Reads while the projection runner commits: an answer made of several queries is of one state of
the read models (Reads.snapshot). Before, a ?level= page could list a profile of another level, and
/stats' level and tier counts could miss profiles its `profiles` already counted."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from ops.bench.events import generate
from tests.integration.engine_process import EngineProcess

LEVEL, TIER = "transactional", "neutral"


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("consistency") / "data").start()
    try:
        yield eng
    finally:
        eng.kill()


def test_answers_read_while_the_runner_commits_agree_with_themselves(engine: EngineProcess) -> None:
    lines = generate(30_000, customers=3_000).lines
    done = threading.Event()

    def ingest() -> None:
        try:
            with httpx.Client(base_url=engine.http, timeout=60) as client:
                for start in range(0, len(lines), 100):
                    r = client.post("/events", content=b"\n".join(lines[start:start + 100]),
                                    headers={"content-type": "application/x-ndjson"})
                    assert r.status_code == 200, r.text
        finally:
            done.set()

    sender = threading.Thread(target=ingest)
    sender.start()
    stats_read = pages_read = 0
    with httpx.Client(base_url=engine.http, timeout=60) as client:
        while not done.is_set() or stats_read < 20:
            stats = client.get("/stats").json()
            assert sum(stats["engagement"].values()) == stats["profiles"] == sum(stats["advocacy"].values()), stats
            stats_read += 1
            for name, value in (("level", LEVEL), ("tier", TIER)):
                page = client.get("/customers", params={name: value, "limit": 1000}).json()["items"]
                field = "engagement" if name == "level" else "advocacy"
                assert {item[field].get(name) for item in page} <= {value}, (name, value)
                pages_read += 1
    sender.join()
    assert stats_read >= 20 and pages_read >= 40
