"""Fixtures over real parts: a nats-server with JetStream on a free port, an `engage up` process, and
a tmp_path store."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from engine import jetstream
from engine.natsserver import NatsServer
from tests.integration.engine_process import EngineProcess


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A started nats-server on a free port, stopped even when the test fails.

    A test may kill() and start() it again: it comes back on the same port and store."""
    server = NatsServer(tmp_path / "nats", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    """`engage up` on a fresh data directory and free ports, killed after the test (a module that
    needs another engine, one per module or with flags, defines its own `engine`)."""
    eng = EngineProcess(tmp_path / "data").start()
    try:
        yield eng
    finally:
        eng.kill()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client connection made the engine's way (reconnects forever), closed after the test."""
    client = await jetstream.connect(nats_server.url, name="engage-test")
    try:
        yield client
    finally:
        await client.close()


async def publish(js: JetStreamContext, subject: str, data: bytes, msg_id: str) -> PubAck:
    """Publish as producers should (SPEC §2): the event id as `Nats-Msg-Id` (js.publish has no
    msg-id argument of its own)."""
    return await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})
