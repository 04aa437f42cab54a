"""The stream and the durable pull consumer against a real nats-server: order, ack after commit,
purge after commit, idling, big messages, a kill -9 of the server, and a draining stop."""
from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType

from engine import jetstream
from engine.jetstream import DURABLE, STREAM, Consumer, StreamMismatch, ensure_stream
from engine.natsserver import NatsServer, find_binary
from engine.received import Received
from ops.bench.ports import free_ports
from tests.integration.conftest import publish

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class Recorder:
    """An on_batch that keeps what it was given; `fail` decides per call whether to raise."""

    def __init__(self, fail: Callable[[list[Received]], bool] = lambda items: False) -> None:
        self.calls: list[list[Received]] = []
        self.committed: list[bytes] = []
        self.fail = fail

    async def __call__(self, items: list[Received]) -> None:
        self.calls.append(items)
        if self.fail(items):
            raise RuntimeError("commit failed")
        self.committed.extend(item.raw for item in items)


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
        await task  # a consumer that crashed fails the test here


async def stream_messages(nc: Client) -> int:
    info = await nc.jetstream().stream_info(STREAM)
    return int(info.state.messages)


async def until_stream_holds(nc: Client, n: int, timeout: float = 5) -> None:
    """The server applies acks asynchronously: a flushed ack removes its message a moment later."""
    async def poll() -> None:
        while await stream_messages(nc) != n:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def publish_many(nc: Client, payloads: list[bytes], subject: str = "touchpoints.test") -> None:
    js = nc.jetstream()
    for i, data in enumerate(payloads):
        await publish(js, subject, data, f"id-{data.decode(errors='replace')[:40]}-{i}")


def numbered(start: int, stop: int) -> list[bytes]:
    return [f"{i:05d}".encode() for i in range(start, stop)]


async def test_stream_is_a_file_stream_that_drops_repeated_msg_ids(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_stream(js)
    await ensure_stream(js)  # again at the next start: an update, not an error
    config = (await js.stream_info(STREAM)).config
    assert config.retention == RetentionPolicy.LIMITS  # emptied by purges after commit, not per ack
    assert config.storage == StorageType.FILE
    assert config.duplicate_window == 0.1  # the server's minimum: the engine decides duplicates
    assert config.subjects == ["touchpoints.>"]
    first = await publish(js, "touchpoints.a", b"{}", "evt-1")
    again = await publish(js, "touchpoints.a", b"{}", "evt-1")
    assert not first.duplicate and again.duplicate


async def test_messages_reach_on_batch_in_stream_sequence_order(nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    js = nc.jetstream()
    subjects = ["touchpoints.helpdesk", "touchpoints.shop", "touchpoints.app.mobile"]
    payloads = numbered(0, 300)
    for i, data in enumerate(payloads):
        await publish(js, subjects[i % 3], data, f"evt-{i}")
    recorder = Recorder()
    consumer = Consumer(nc, recorder, batch=64, clock=lambda: NOW)
    async with running(consumer):
        await until(lambda: len(recorder.committed) >= 300)
    assert recorder.committed == payloads
    received = [item for call in recorder.calls for item in call]
    assert [r.via for r in received] == [f"nats:{subjects[i % 3]}" for i in range(300)]
    assert {r.received_at for r in received} == {NOW}
    assert max(len(call) for call in recorder.calls) <= 64
    assert consumer.fetched == consumer.acked == 300
    assert consumer.batches == len(recorder.calls)


async def test_a_failed_batch_comes_again_before_newer_messages(nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    await publish_many(nc, numbered(0, 5))
    in_stream_while_failing: list[int] = []

    async def commit_fails_once(items: list[Received]) -> None:
        if not in_stream_while_failing:
            await publish_many(nc, numbered(5, 10))  # newer messages arrive meanwhile
            in_stream_while_failing.append(await stream_messages(nc))
            raise RuntimeError("disk full")
        recorder.committed.extend(item.raw for item in items)

    recorder = Recorder()
    consumer = Consumer(nc, commit_fails_once, batch=5)
    async with running(consumer):
        await until(lambda: len(recorder.committed) >= 10)
    assert in_stream_while_failing == [10]  # nothing acked, so nothing removed
    assert recorder.committed == numbered(0, 10)
    assert consumer.acked == 10


async def test_nothing_is_acked_before_on_batch_returns(nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    await publish_many(nc, numbered(0, 20))
    seen_in_stream: list[int] = []

    async def on_batch(items: list[Received]) -> None:
        seen_in_stream.append(await stream_messages(nc))
        recorder.committed.extend(item.raw for item in items)

    recorder = Recorder()
    async with running(Consumer(nc, on_batch, batch=5)):
        await until(lambda: len(recorder.committed) >= 20)
    # Each batch still sees itself in the stream: acks come only after on_batch returned.
    assert seen_in_stream[0] == 20
    assert all(n >= 5 for n in seen_in_stream)


async def test_an_acked_message_leaves_the_stream(nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    await publish_many(nc, numbered(0, 10))
    assert await stream_messages(nc) == 10
    recorder = Recorder()
    async with running(Consumer(nc, recorder)):
        await until(lambda: len(recorder.committed) >= 10)
        await until_stream_holds(nc, 0)


async def test_the_last_batch_leaves_the_stream_without_waiting_for_the_next_fetch(
        nc: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC §6: the stream drops a message once its outcome is committed. The last batch before a
    pause is acked right after its commit, not when the fetch behind it times out (30 s here)."""
    monkeypatch.setattr(jetstream, "FETCH_TIMEOUT", 30.0)
    await ensure_stream(nc.jetstream())
    await publish_many(nc, numbered(0, 7))
    recorder = Recorder()
    consumer = Consumer(nc, recorder, batch=5)
    async with running(consumer):
        await until(lambda: len(recorder.committed) >= 7)
        await until_stream_holds(nc, 0)
        assert consumer.acked == 7


async def test_an_idle_stream_is_fine(nc: Client) -> None:
    recorder = Recorder()
    consumer = Consumer(nc, recorder)
    async with running(consumer) as task:
        await asyncio.sleep(2.5)  # more than two fetch timeouts
        assert not task.done()
        assert recorder.calls == [] and consumer.batches == 0
        await publish_many(nc, [b"late"])
        await until(lambda: recorder.committed == [b"late"])


async def test_a_100_kib_message_reaches_on_batch(nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    big = b"x" * (100 * 1024)
    await publish(nc.jetstream(), "touchpoints.big", big, "big-1")
    recorder = Recorder()
    async with running(Consumer(nc, recorder)):
        await until(lambda: len(recorder.committed) >= 1)
    assert recorder.committed == [big]


async def test_a_deleted_consumer_is_created_again(nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    recorder = Recorder()
    async with running(Consumer(nc, recorder)):
        await publish_many(nc, numbered(0, 3))
        await until(lambda: len(recorder.committed) >= 3)
        await nc.jetstream().delete_consumer(STREAM, DURABLE)
        await publish_many(nc, numbered(3, 6))
        await until(lambda: len(set(recorder.committed)) >= 6)
    # Acks are applied by the server asynchronously: one not applied before the delete comes back
    # as a duplicate, in order.
    assert list(dict.fromkeys(recorder.committed)) == numbered(0, 6)


async def test_kill_9_of_the_server_loses_no_acked_publish(nats_server: NatsServer, nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    published = numbered(0, 400)
    await publish_many(nc, published)  # each one acked by JetStream, so on disk (sync always)

    async def slow_commit(items: list[Received]) -> None:
        await asyncio.sleep(0.01)
        recorder.committed.extend(item.raw for item in items)

    recorder = Recorder()
    consumer = Consumer(nc, slow_commit, batch=20)
    async with running(consumer) as task:
        await until(lambda: len(recorder.committed) >= 60)
        nats_server.kill()
        nats_server.start()  # same store, same port
        # Not is_connected: until the client notices the dead socket it still says connected.
        await until(lambda: nc.stats["reconnects"] == 1)
        more = numbered(400, 500)
        await publish_many(nc, more)
        published += more
        await until(lambda: set(published) <= set(recorder.committed), timeout=30)
        assert not task.done()
    # At least once, and decided in stream-sequence order: a redelivery only repeats what was
    # already committed, so first sightings are in publish order.
    first_seen = list(dict.fromkeys(recorder.committed))
    assert first_seen == published


async def deliver_without_ack(url: str, n: int) -> None:
    """Pull n messages from the durable on another connection and never ack them: what the
    server counts as delivered to an engine that crashed, or lost in flight."""
    other = await nats.connect(url)
    try:
        sub = await other.jetstream().pull_subscribe_bind(DURABLE, stream=STREAM)
        assert len(await sub.fetch(n, timeout=2)) == n
    finally:
        await other.close()


async def test_messages_left_unacked_by_an_earlier_run_come_first(
    nats_server: NatsServer, nc: Client
) -> None:
    await ensure_stream(nc.jetstream())
    await nc.jetstream().add_consumer(STREAM, ConsumerConfig(durable_name=DURABLE, ack_wait=30))
    await publish_many(nc, numbered(0, 10))
    await deliver_without_ack(nats_server.url, 3)
    recorder = Recorder()
    async with running(Consumer(nc, recorder)):
        await until(lambda: len(recorder.committed) >= 10, timeout=5)
    assert recorder.committed == numbered(0, 10)


async def test_delivery_restarts_from_the_lowest_unacked_after_a_server_restart(
    nats_server: NatsServer, nc: Client
) -> None:
    await ensure_stream(nc.jetstream())
    await publish_many(nc, numbered(0, 2))
    started, release = asyncio.Event(), asyncio.Event()

    async def commit(items: list[Received]) -> None:
        started.set()
        await release.wait()
        recorder.committed.extend(item.raw for item in items)

    recorder = Recorder()
    async with running(Consumer(nc, commit)):
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(1.1)  # the consumer's last pull request expires: it is busy committing
        await publish_many(nc, numbered(2, 12))
        await deliver_without_ack(nats_server.url, 3)  # 2..4 delivered, then the server crashes
        await asyncio.sleep(0.3)  # the consumer's delivered state reaches its file (written async)
        nats_server.kill()
        nats_server.start()
        await until(lambda: nc.stats["reconnects"] == 1)
        release.set()  # the batch commits and acks after the reconnect, on the restarted server
        await until(lambda: len(recorder.committed) >= 12, timeout=5)
    # Not 5..11 first and 2..4 after ack_wait: the fresh consumer starts at the lowest unacked.
    assert list(dict.fromkeys(recorder.committed)) == numbered(0, 12)


async def test_stop_drains_the_in_flight_batch(nc: Client) -> None:
    await ensure_stream(nc.jetstream())
    await publish_many(nc, numbered(0, 5))
    started, release = asyncio.Event(), asyncio.Event()

    async def blocking_commit(items: list[Received]) -> None:
        started.set()
        await release.wait()
        recorder.committed.extend(item.raw for item in items)

    recorder = Recorder()
    consumer = Consumer(nc, blocking_commit)
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        stopping = asyncio.create_task(consumer.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()  # waits for the batch to commit and ack
        release.set()
        await asyncio.wait_for(stopping, 10)
        assert task.done()
        await task
    finally:
        release.set()
        await consumer.stop()
        await task
    assert recorder.committed == numbered(0, 5)
    assert consumer.acked == 5
    await publish_many(nc, numbered(5, 6))
    await until_stream_holds(nc, 1)  # the drained batch left, the new message waits
    await asyncio.sleep(0.2)
    assert consumer.fetched == 5  # no fetch after stop
    assert await stream_messages(nc) == 1


async def test_stop_while_idle_returns_at_once(nc: Client) -> None:
    consumer = Consumer(nc, Recorder())
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(consumer.stop(), 5)
    await task
    assert loop.time() - began < 0.5


async def test_an_empty_work_queue_stream_of_an_older_engine_is_remade(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=["touchpoints.>"], retention=RetentionPolicy.WORK_QUEUE)
    await ensure_stream(js)
    assert (await js.stream_info(STREAM)).config.retention == RetentionPolicy.LIMITS


async def test_a_work_queue_stream_with_messages_waiting_is_not_taken_over(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=["touchpoints.>"], retention=RetentionPolicy.WORK_QUEUE)
    await publish(js, "touchpoints.a", b"{}", "evt-1")
    with pytest.raises(StreamMismatch, match="1 messages waiting"):
        await ensure_stream(js)


async def test_a_stream_of_that_name_on_other_subjects_is_not_taken_over(nc: Client) -> None:
    """Someone else's TOUCHPOINTS: updating it to touchpoints.> would decide and purge their
    messages (found by a probe: it did)."""
    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=["other.touch.>"])
    for n in range(2):
        await publish(js, "other.touch.x", b"{}", f"theirs-{n}")
    with pytest.raises(StreamMismatch, match=r"stream TOUCHPOINTS on other\.touch\.>, not on touchpoints\.>"):
        await ensure_stream(js)
    info = await js.stream_info(STREAM)
    assert (info.config.subjects, info.state.messages) == (["other.touch.>"], 2)


async def test_a_stream_the_server_will_not_let_the_engine_shape_is_one_line(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="THEIRS", subjects=["touchpoints.audit"])  # overlaps touchpoints.>
    with pytest.raises(StreamMismatch, match=r"refused stream TOUCHPOINTS on touchpoints\.>: subjects overlap"):
        await ensure_stream(js)
    await js.delete_stream("THEIRS")
    await js.add_stream(name=STREAM, subjects=["touchpoints.>"], storage=StorageType.MEMORY)
    with pytest.raises(StreamMismatch, match=r"refused stream TOUCHPOINTS on touchpoints\.>: .*storage type"):
        await ensure_stream(js)


async def test_a_server_without_jetstream_is_one_line(tmp_path: Path) -> None:
    binary = find_binary()
    assert binary is not None
    (port,) = free_ports(1)
    proc = subprocess.Popen([str(binary), "-a", "127.0.0.1", "-p", str(port)],  # no -js
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = None
        for _ in range(100):
            with contextlib.suppress(OSError, nats.errors.NoServersError):
                client = await nats.connect(f"nats://127.0.0.1:{port}", max_reconnect_attempts=0)
                break
            await asyncio.sleep(0.05)
        assert client is not None
        try:
            with pytest.raises(StreamMismatch, match="JetStream is not enabled on the NATS server"):
                await ensure_stream(client.jetstream())
        finally:
            await client.close()
    finally:
        proc.terminate()
        proc.wait(10)
