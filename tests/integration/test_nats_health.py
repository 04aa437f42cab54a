"""/health over the JetStream path: a NATS server that is gone, or a stream the consumer cannot
purge what it committed from, made no difference to /health ("ok") while no touchpoint came in
over NATS, or committed ones stayed in the stream. Now `nats` says what is wrong, and the status
is degraded until it is not."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from engine.jetstream import STREAM
from engine.natsserver import NatsServer
from tests.integration.engine_process import EngineProcess
from tests.samples import ev


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    nats_server = NatsServer(tmp_path / "nats", port=0)
    nats_server.start()
    yield nats_server
    nats_server.stop()


@pytest.fixture
def engine(tmp_path: Path, server: NatsServer) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path / "data", extra=["--nats", server.url])
    yield eng
    eng.kill()


async def publish(url: str, n: int) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish("touchpoints.health", ev(f"h-{n}", "idea.voted", {"idea": "i"}),
                                     headers={"Nats-Msg-Id": f"h-{n}"})
    finally:
        await nc.close()


def test_a_nats_server_that_is_gone_is_degraded_health_until_it_is_back(engine: EngineProcess,
                                                                        server: NatsServer) -> None:
    engine.start()
    health = engine.health_when(lambda h: h["status"] == "ok")
    assert health["nats"] == {"connected": True, "error": None}
    server.kill()
    health = engine.health_when(lambda h: h["status"] == "degraded")
    assert health["nats"]["connected"] is False and "not connected" in health["nats"]["error"], health
    server.start()  # same port, same store
    health = engine.health_when(lambda h: h["status"] == "ok")
    assert health["nats"] == {"connected": True, "error": None}


async def test_committed_messages_the_stream_keeps_are_degraded_health_until_purged(engine: EngineProcess,
                                                                                   server: NatsServer) -> None:
    engine.start()
    engine.health_when(lambda h: h["status"] == "ok")
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    try:
        config = (await js.stream_info(STREAM)).config
        config.deny_purge = True  # an operator's change: nothing may purge the stream
        await js.update_stream(config)
        await publish(server.url, 1)
        engine.wait_for_head(1)
        health = engine.health_when(lambda h: h["status"] == "degraded")
        assert "purging committed messages" in health["nats"]["error"], health
        assert (await js.stream_info(STREAM)).state.messages == 1  # committed, and still in the stream
        # A stream that denies purges cannot be changed back: the operator deletes it, and the
        # consumer makes it anew (what it had committed is in the log already).
        await js.delete_stream(STREAM)
        health = engine.health_when(lambda h: h["status"] == "ok")
        assert health["nats"] == {"connected": True, "error": None}
        await publish(server.url, 2)
        engine.wait_for_head(2)
        engine.health_when(lambda h: h["status"] == "ok" and h["log"]["head"] == 2)
        deadline = time.time() + 30
        while (await js.stream_info(STREAM)).state.messages:  # purged once acked (in the background)
            assert time.time() < deadline
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
