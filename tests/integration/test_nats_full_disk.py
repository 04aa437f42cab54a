"""A full disk under the engine's own nats-server. JetStream fails to write the stream's store, and
nats-server keeps failing that stream after room is made again (publishes time out, purges fail
with "no space left on device") until it restarts: ingest over NATS stayed dead until someone
restarted the engine. The engine now restarts its nats-server once the disk has room; the
producers' retries go through, and every event is in the log exactly once.

The data directory is a real file system of 48 MiB (tmpfs, mounted for the test: it needs root,
like the immutable-file test of test_cli.py)."""
from __future__ import annotations

import asyncio
import errno
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest

from tests.integration.engine_process import EngineProcess, engage
from tests.samples import ev


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "data"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=700", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def events(start: int, stop: int) -> list[tuple[str, bytes]]:
    return [(f"e-d-{i}", ev(f"d-{i}", "comment.posted", {"thread": "t", "text": "words " * 40}))
            for i in range(start, stop)]


async def publish(url: str, batch: list[tuple[str, bytes]], *, until_refused: bool = False) -> set[str]:
    """The ids JetStream acknowledged; `until_refused`: stop at the first publish it does not."""
    acked: set[str] = set()
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=2)
        for event_id, raw in batch:
            try:
                await js.publish("touchpoints.disk", raw, headers={"Nats-Msg-Id": event_id})
            except (nats.errors.TimeoutError, nats.js.errors.APIError):
                if until_refused:
                    break
                raise
            acked.add(event_id)
    finally:
        await nc.close()
    return acked


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


def test_the_engine_restarts_its_nats_server_once_a_full_disk_has_room(small_disk: Path) -> None:
    engine = EngineProcess(small_disk).start()
    try:
        first, second = events(0, 100), events(100, 200)
        assert asyncio.run(publish(engine.nats, first)) == {event_id for event_id, _ in first}
        engine.wait_for_head(100)

        filler = fill(small_disk)
        refused = asyncio.run(publish(engine.nats, second, until_refused=True))
        assert len(refused) < len(second), "a full disk took every publish"
        engine.health_when(lambda h: "no space left on device" in (h["nats"]["error"] or ""))

        filler.unlink()
        health = engine.health_when(lambda h: h["status"] == "ok", timeout=60)
        assert health["nats"] == {"connected": True, "error": None}
        assert "restarting it" in engine.log_tail(20_000)

        # The producer sends again what JetStream did not acknowledge (ids make it safe to send all).
        assert asyncio.run(publish(engine.nats, second)) == {event_id for event_id, _ in second}
        engine.wait_for_head(200)
        health = engine.health_when(lambda h: h["log"]["head"] == 200 and h["status"] == "ok")
    finally:
        engine.stop()
    exported = engage("export", "--data", str(small_disk))
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["position"] for r in records] == list(range(1, 201))
    assert sorted(r["event"]["id"] for r in records) == sorted(event_id for event_id, _ in first + second)
