"""/health and /metrics while the projection runner moves: /health read the head first and the
runner's position twice (each a read of the read models' file), so a soak saw
`"position": 57313, "lag": -2` while the head was 57313. The runner's position is read once,
before the head, so position + lag is the head; and a runner that folded a record before the
writer's answer gave the engine that head is caught up: lag 0, never negative."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from engine.log import Log
from engine.received import Received
from ops.api import build_app
from tests.samples import ev


class FoldingRunner:
    """Stands for the runner process: each read of its position finds that two more events were
    committed and folded meanwhile (what a busy engine does between two reads)."""

    error = None

    def __init__(self, log: Log) -> None:
        self._log = log
        self._n = 0

    @property
    def position(self) -> int:
        self._n += 2
        self._log.commit([Received(ev(f"m-{self._n}-{k}", "idea.voted", {"idea": "i"}), "test", datetime.now(UTC))
                          for k in range(2)])
        return self._log.head.position

    @property
    def folded(self) -> int:
        return self._log.head.position


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    log = Log(tmp_path / "log.sqlite")
    yield log
    log.close()


async def test_health_and_metrics_agree_with_the_head_while_the_runner_moves(log: Log) -> None:
    app = build_app(log, None, None, FoldingRunner(log))
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for _ in range(5):
            health = (await client.get("/health")).json()
            folded = health["projections"]["read-models"]
            assert folded["lag"] >= 0 and folded["position"] + folded["lag"] == health["log"]["head"], health
        metrics = (await client.get("/metrics")).text
        lag = next(line for line in metrics.splitlines() if line.startswith("engage_projection_lag{"))
        assert float(lag.rsplit(" ", 1)[1]) >= 0, lag


class AheadRunner:
    """Stands for a runner that read the log file and folded three records the writer has
    committed but not yet answered for: the engine's head does not know them yet."""

    error = None

    def __init__(self, log: Log) -> None:
        self._log = log

    @property
    def position(self) -> int:
        return self._log.head.position + 3

    @property
    def folded(self) -> int:
        return self.position


async def test_a_runner_ahead_of_the_engines_head_is_caught_up(log: Log) -> None:
    app = build_app(log, None, None, AheadRunner(log))
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        health = (await client.get("/health")).json()
        assert health["projections"]["read-models"] == {"position": 3, "folded": 3, "lag": 0, "error": None}, health
        metrics = (await client.get("/metrics")).text
        assert 'engage_projection_lag{projection="read-models"} 0.0' in metrics, metrics
