"""Nothing lost, nothing counted twice: SIGKILL the engine or its nats-server mid-ingest."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import nats
import pytest

from engine.chain import verify
from engine.natsserver import NatsServer
from tests.integration.engine_process import EngineProcess, engage
from tests.samples import ev


def exported(data: Path) -> list[dict[str, object]]:
    r = engage("export", "--data", str(data))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert verify(line.encode() for line in lines)[1] is None
    return [json.loads(line) for line in lines]


def assert_exactly_once(data: Path, ids: list[str]) -> None:
    records = exported(data)
    assert [r["position"] for r in records] == list(range(1, len(records) + 1))  # gapless
    logged = [r["event"]["id"] for r in records]  # type: ignore[index]
    assert len(logged) == len(set(logged)), "an event was appended twice"
    assert set(ids) <= set(logged), f"{len(set(ids) - set(logged))} acknowledged events are missing"


def comment(k: int) -> bytes:
    return ev(f"n-{k}", "comment.posted", {"thread": f"t-{k % 97}", "text": "ünïcødé ✓"}, customer=f"c-{k % 300}")


async def publish_all(url: str, ks: Sequence[int], window: int = 500) -> list[str]:
    """Publish with Nats-Msg-Id in concurrent windows; returns the ids JetStream acknowledged."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    ids: list[str] = []
    try:
        for start in range(0, len(ks), window):
            chunk = ks[start:start + window]
            await asyncio.gather(*(js.publish("touchpoints.crash", comment(k), headers={"Nats-Msg-Id": f"e-n-{k}"})
                                   for k in chunk))
            ids += [f"e-n-{k}" for k in chunk]
    finally:
        await nc.close()
    return ids


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path / "data")
    try:
        yield eng
    finally:
        eng.kill()


async def publish_until_killed(url: str, ks: range, acked: list[str], window: int = 500) -> None:
    """Publish while the engine may die under us: only what JetStream acknowledged counts."""
    nc = await nats.connect(url, max_reconnect_attempts=0)
    js = nc.jetstream()
    try:
        for start in range(ks.start, ks.stop, window):
            chunk = range(start, min(start + window, ks.stop))
            acks = await asyncio.gather(*(js.publish("touchpoints.crash", comment(k), timeout=2,
                                                     headers={"Nats-Msg-Id": f"e-n-{k}"})
                                          for k in chunk), return_exceptions=True)
            acked += [f"e-n-{k}" for k, ack in zip(chunk, acks, strict=True) if not isinstance(ack, BaseException)]
            if any(isinstance(ack, BaseException) for ack in acks):
                return  # the server is gone
    finally:
        with contextlib.suppress(Exception):  # closing a connection whose server was just killed
            await nc.close()


async def test_sigkill_during_a_20000_event_ingest_loses_and_duplicates_nothing(engine: EngineProcess) -> None:
    engine.start()
    acked: list[str] = []
    publishing = asyncio.create_task(publish_until_killed(engine.nats, range(0, 20_000), acked))
    while engine.get("/health").json()["log"]["head"] < 5_000:
        await asyncio.sleep(0.05)
    engine.kill()  # the engine and its nats-server together, with publishes and a batch in flight
    await publishing
    assert 5_000 <= len(acked) < 20_000, "the kill should land mid-ingest; the test lost its point"
    engine.start()
    rest = [k for k in range(20_000) if f"e-n-{k}" not in set(acked)]
    for start in range(0, len(rest), 500):
        await publish_all(engine.nats, rest[start:start + 500])
    engine.wait_for_head(20_000, timeout=180)
    engine.stop()
    assert_exactly_once(engine.data, [f"e-n-{k}" for k in range(20_000)])
    assert len(exported(engine.data)) == 20_000


async def test_sigkill_between_commit_and_ack_appends_nothing_on_redelivery(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", port=0)
    server.start()
    crashing = EngineProcess(tmp_path / "data", extra=["--nats", server.url, "--ack-wait", "1"],
                             env={"ENGAGE_FAULT": "kill-after-commit"})
    try:
        crashing.start()
        ids = await publish_all(server.url, range(0, 50), window=50)
        crashing.proc.wait(30)  # type: ignore[union-attr]  # it killed itself after the first commit
        committed = len(exported(crashing.data))
        assert committed > 0
        again = EngineProcess(tmp_path / "data", extra=["--nats", server.url, "--ack-wait", "1"])
        again.http_port = crashing.http_port
        again.start()
        try:
            again.wait_for_head(50)
            await asyncio.sleep(1.5)  # past ack_wait: anything redelivered has been decided
            assert again.get("/rejects").json()["items"] == []
        finally:
            again.stop()
        assert_exactly_once(tmp_path / "data", ids)
        assert len(exported(tmp_path / "data")) == 50
    finally:
        crashing.kill()
        server.stop()


async def test_nats_server_killed_and_restarted_mid_ingest_loses_nothing(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", port=0)
    server.start()
    eng = EngineProcess(tmp_path / "data", extra=["--nats", server.url])
    try:
        eng.start()
        ids = await publish_all(server.url, range(0, 3000))
        server.kill()
        server.start()  # same port, same store: what JetStream acknowledged was fsynced
        ids += await publish_all(server.url, range(3000, 6000))
        eng.wait_for_head(6000, timeout=120)
        eng.stop()
        assert_exactly_once(eng.data, ids)
    finally:
        eng.kill()
        server.stop()


async def test_duplicates_hold_across_an_engine_restart_and_across_paths(engine: EngineProcess) -> None:
    import httpx

    engine.start()
    first = ev("x", "purchase.completed", {"order": "o", "amount_cents": 1, "currency": "EUR"})
    assert httpx.post(engine.http + "/events", content=first, headers={"content-type": "application/json"}).json()[
        "accepted"] == 1
    engine.stop()
    engine.start()
    nc = await nats.connect(engine.nats)
    await nc.jetstream().publish("touchpoints.shop", first)  # over NATS this time, after a restart
    await nc.close()
    conflict = ev("x", "purchase.completed", {"order": "o", "amount_cents": 2, "currency": "EUR"})
    r = httpx.post(engine.http + "/events", content=first + b"\n" + conflict,
                   headers={"content-type": "application/x-ndjson"})
    assert r.json()["duplicates"] == 1 and r.json()["rejected"][0]["reason"] == "duplicate_conflict"
    await asyncio.sleep(1)
    assert engine.get("/health").json()["log"]["head"] == 1
    assert [x["reason"] for x in engine.get("/rejects").json()["items"]] == ["duplicate_conflict"]


async def publish_once_back(url: str, ks: Sequence[int], timeout: float = 30) -> list[str]:
    """`publish_all`, tried again every half second while the server is not back (for `timeout` s)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await publish_all(url, ks)
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_the_engines_own_nats_server_is_restarted_if_it_dies(engine: EngineProcess) -> None:
    import os
    import signal

    engine.start()
    ids = await publish_all(engine.nats, range(0, 1000))
    engine.wait_for_head(1000)
    pid = int((engine.data / "nats" / "nats-server.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)  # only the server; the engine lives on
    ids += await publish_once_back(engine.nats, range(1000, 2000))
    engine.wait_for_head(2000)
    engine.stop()
    assert_exactly_once(engine.data, ids)
    assert "starting it again" in engine.log_tail(20_000)


async def test_a_nats_server_that_cannot_start_again_at_once_is_started_when_it_can(engine: EngineProcess) -> None:
    """The engine's first start of its dead nats-server fails (its port is taken meanwhile): the
    engine tries again, every second, until it starts. It used to try once and never again."""
    import os
    import signal
    import socket

    engine.start()
    ids = await publish_all(engine.nats, range(0, 100))
    engine.wait_for_head(100)
    pid = int((engine.data / "nats" / "nats-server.pid").read_text().split()[0])
    squatter = socket.socket()
    try:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        os.kill(pid, signal.SIGKILL)  # only the server; the engine lives on
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:  # the port is ours as soon as the server is gone: before the engine looks again
            try:
                squatter.bind(("127.0.0.1", engine.nats_port))
                break
            except OSError:
                assert loop.time() < deadline, "the dead server's port did not come free"
                await asyncio.sleep(0.001)
        squatter.listen()
        deadline = loop.time() + 30
        while "did not start again" not in engine.log_tail(20_000):
            assert loop.time() < deadline, engine.log_tail()
            await asyncio.sleep(0.1)
    finally:
        squatter.close()
    ids += await publish_once_back(engine.nats, range(100, 200))
    engine.wait_for_head(200)
    engine.stop()
    assert_exactly_once(engine.data, ids)
