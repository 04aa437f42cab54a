"""The TOUCHPOINTS stream and its durable pull consumer: fetch a batch, hand it on, ack only after.

SPEC §2: a message is acknowledged only after its outcome is durably committed, and messages are
decided in stream-sequence order. SPEC §6: the stream is a conveyor, not a record: after each
committed and acked batch the consumer purges the stream up to its ack floor, so only undecided
messages remain in the store.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from operator import itemgetter

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from engine.received import Received
from engine.settings import nats_servers, without_credentials

STREAM = "TOUCHPOINTS"
SUBJECTS = ["touchpoints.>"]
DURABLE = "engage-ingest"
# JetStream drops a repeated Nats-Msg-Id inside this window without comparing content, so a
# conflicting resend would never reach the engine and no `duplicate_conflict` would be kept (SPEC §2:
# every rejection is kept). The engine's own idempotency is exact and lasts forever: the stream's
# window is the server's minimum.
DUPLICATE_WINDOW = 0.1

FETCH_TIMEOUT = 1.0  # an idle fetch returns this often, so stop() is never kept waiting long
# Seconds (an int for nats-py) to wait for the PONG after the acks: no disk write, but the answer
# waits for this event loop, which large HTTP bodies can keep busy for a few seconds (2 s restarted
# delivery for nothing under the benchmark's HTTP load).
ACK_FLUSH_TIMEOUT = 10
# How long a purge waits for the server to move the consumer's ack floor over the last acks (it does
# so a moment after them): polled every PURGE_POLL seconds, in the background.
PURGE_WAIT = 2.0
PURGE_POLL = 0.05
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0

log = logging.getLogger("engage.nats")


# While NATS does not answer, nats-py reports every attempt (one a second): the log says the first
# and then one in this many seconds.
REPEAT_EVERY = 30.0


# The engine's replies and deliveries: JetStream sends every message it hands the consumer to an
# inbox, and the default `_INBOX.` is where producers may subscribe (for their publish acks), so
# any producer could read every touchpoint. Producers may not subscribe under this prefix.
ENGINE_INBOX = "_ENGAGE_ENGINE"


async def connect(url: str, *, name: str = "engage", on_refused: Callable[[str], bool] | None = None) -> Client:
    """A connection that reconnects forever: nats-py's default gives up after 60 attempts (~2 min),
    and an engine whose NATS restarts must carry on, not stall with a closed connection. `url`
    may list several servers of a cluster, comma-separated. Logs never show its credentials.
    `on_refused` hears the server's word when it refuses the credentials (nats-py goes on trying);
    True: it dealt with it, nothing is logged."""

    client = Client()
    shown = without_credentials(url)
    said: dict[str, float] = {}  # message -> when it was last logged

    handled: list[str] = []  # the refusal on_refused dealt with: what follows it is its caller's to say

    async def on_error(e: Exception) -> None:
        message = str(e) or type(e).__name__
        if handled:
            return
        if on_refused is not None and "authorization violation" in message.lower() and on_refused(message):
            handled.append(message)
            return
        now = time.monotonic()
        if now - said.get(message, -REPEAT_EVERY) >= REPEAT_EVERY:
            said[message] = now
            log.warning("nats: %s (%s; retrying every second)", message, shown)

    async def on_disconnected() -> None:
        if not client.is_closed:  # close() reports a disconnect too
            log.warning("nats: disconnected from %s; reconnecting", shown)

    async def on_reconnected() -> None:
        said.clear()
        log.info("nats: reconnected to %s", shown)

    async def on_closed() -> None:
        log.info("nats: connection to %s closed", shown)

    await client.connect(
        nats_servers(url),
        name=name,
        inbox_prefix=ENGINE_INBOX,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        ping_interval=10,  # notice a silent server in ~30 s, not the default 4 minutes
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        closed_cb=on_closed,
    )
    return client


def stream_config() -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=list(SUBJECTS),
        storage=StorageType.FILE,
        # LIMITS, not WORK_QUEUE: a work queue deletes each message on its ack, one fsync per message
        # with `sync_interval: always` (about 5k/s here). The consumer purges up to its ack floor
        # after every batch instead: one operation per batch, and whole blocks leave the disk.
        retention=RetentionPolicy.LIMITS,
        duplicate_window=DUPLICATE_WINDOW,
        # No limit of the stream's own: a message over 64 KiB must reach the engine to be kept as a
        # `too_large` reject (SPEC §2), so only the server's max_payload bounds it.
        max_msg_size=-1,
    )


async def ensure_stream(js: JetStreamContext) -> None:
    """Create the stream, or bring an existing one to our config (the engine owns it, SPEC §2).

    A stream of that name on other subjects is someone else's: taking it over would decide (and
    purge) their messages. It, a server without JetStream, and a stream the server will not let us
    shape (another stream on touchpoints.>, a storage type that cannot change) are a
    StreamMismatch: one line for ops, not a traceback."""
    config = stream_config()
    try:
        try:
            info = await js.stream_info(STREAM)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s on %s", STREAM, ", ".join(SUBJECTS))
            return
        if list(info.config.subjects or ()) != SUBJECTS:
            raise StreamMismatch(
                f"the NATS server has a stream {STREAM} on {', '.join(info.config.subjects or ()) or 'no subject'}, "
                f"not on {', '.join(SUBJECTS)}: it is not the engine's; remove it (nats stream rm {STREAM}) "
                "or give the engine another NATS server")
        if info.config.retention != config.retention:
            # JetStream cannot change a stream's retention in place; an empty one can be remade.
            if info.state.messages:
                raise StreamMismatch(
                    f"stream {STREAM} has retention {_policy(info.config.retention)} and {info.state.messages} "
                    f"messages waiting; the engine needs {_policy(config.retention)}: let the engine that "
                    f"made it drain it first, or remove it (nats stream rm {STREAM}) if they are not needed")
            await js.delete_stream(STREAM)
            await js.add_stream(config)
            log.info("re-created empty stream %s with retention %s", STREAM, _policy(config.retention))
            return
        await js.update_stream(config)
    except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError) as e:
        raise StreamMismatch("JetStream is not enabled on the NATS server: start nats-server with -js (or a "
                             "jetstream block in its configuration)") from e
    except nats.js.errors.APIError as e:
        raise StreamMismatch(f"the NATS server refused stream {STREAM} on {', '.join(SUBJECTS)}: "
                             f"{e.description or type(e).__name__}; remove what is in the way "
                             f"(nats stream ls, nats stream info {STREAM})") from e


def _policy(retention: RetentionPolicy | str | None) -> str:
    """`limits`, `workqueue`, … (a stream's info gives the server's word, not the enum)."""
    return str(getattr(retention, "value", retention))


Fetched = tuple[list[tuple[int, Msg]], list[Received]]  # (stream sequence, message) in order, and the inputs


class StreamMismatch(Exception):
    """The stream exists in a shape the engine cannot take over (a one-line message for ops)."""


class BatchFailed(Exception):
    """on_batch raised: its cause says why; the batch stays unacked and comes back in order."""


class Consumer:
    """Fetches batches from the durable consumer, awaits `on_batch`, then acks the whole batch.

    The stream holds only what is not yet committed and acked (each batch purges up to the ack
    floor), so a fresh durable consumer (DeliverPolicy.ALL) starts at the lowest unacked message.
    The consumer is therefore deleted and created again whenever delivery must restart in order:
    at start, after `on_batch` raised, after a reconnect (the server may have restarted with older
    messages pending), when the consumer is gone. Redelivered messages the log has already
    committed come back as duplicates, never after newer undecided ones.
    """

    def __init__(
        self,
        nc: Client,
        on_batch: Callable[[list[Received]], Awaitable[object]],
        *,
        batch: int = 256,
        ack_wait: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.nc = nc
        self.on_batch = on_batch
        self.batch = batch
        self.ack_wait = ack_wait
        self.clock = clock
        self.fetched = 0
        self.acked = 0
        self.batches = 0
        self._js = nc.jetstream()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._reconnects_seen = -1
        self._purged_below = 0
        self._last_acked = 0
        self._stream_key = STREAM
        self._stopping = asyncio.Event()
        self._fetching: asyncio.Task[Fetched] | None = None
        self._unacked: tuple[list[Msg], int] | None = None  # the last committed batch, acked with the next
        self._early_acks: asyncio.Task[None] | None = None  # its acks, already sent when nothing came next
        self._purging: asyncio.Task[None] | None = None
        self._running = False
        self._finished = asyncio.Event()
        # For /health: why delivery last failed (until a fetch comes back), and why the last
        # purge failed (until one succeeds: committed messages stay in the stream meanwhile).
        self._delivery_error: str | None = None
        self._purge_error: str | None = None
        # Whether those came from the server failing to write its store (a full disk): nats-server
        # keeps failing such a stream until it restarts, even once there is room again.
        self._delivery_store_failed = False
        self._purge_store_failed = False

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    @property
    def error(self) -> str | None:
        """What keeps the consumer from taking touchpoints off the stream, or from clearing what it
        committed off it, now; None when nothing does."""
        if not self.nc.is_connected:
            return "not connected to the NATS server (reconnecting)"
        return self._delivery_error or self._purge_error

    @property
    def store_failed(self) -> bool:
        """The server failed to write the stream's store (no space left, a disk quota) and that is
        why delivery or purging fails now. nats-server keeps failing the stream with that error
        after room is made again, until it restarts (engine/runtime.py restarts its own)."""
        return bool(self.nc.is_connected and ((self._delivery_error is not None and self._delivery_store_failed)
                                              or (self._purge_error is not None and self._purge_store_failed)))

    async def run(self) -> None:
        """Consume until stop(). A closed connection ends it with ConnectionClosedError."""
        self._running = True
        self._finished.clear()
        backoff = BACKOFF_FIRST
        try:
            while not self._stopping.is_set():
                try:
                    await self._step()
                    backoff = BACKOFF_FIRST
                except nats.errors.ConnectionClosedError:
                    if self._stopping.is_set():
                        break
                    raise
                except Exception as e:
                    if self.nc.is_closed:
                        raise nats.errors.ConnectionClosedError from e
                    if isinstance(e, BatchFailed):  # the log's failure: /health says so under ingest
                        log.error("jetstream consumer: batch not acked; redelivering it in %.1f s", backoff,
                                  exc_info=e.__cause__)
                    else:
                        self._delivery_error = f"delivery from JetStream failed: {_describe(e)}"
                        self._delivery_store_failed = store_write_failed(e)
                        log.warning("jetstream consumer: %s; restarting delivery in %.1f s",
                                    _describe(e), backoff)
                    await self._unsubscribe()
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            await self._unsubscribe()
            purging, self._purging = self._purging, None
            if purging is not None and not purging.done():  # the connection closed under it
                purging.cancel()
                await asyncio.wait([purging])
            self._running = False
            self._finished.set()

    async def stop(self) -> None:
        """Finish the in-flight batch (commit and ack), fetch nothing more, and return."""
        self._stopping.set()
        fetching = self._fetching
        if fetching is not None and not fetching.done():
            # Messages a cancelled fetch already held are unacked: they come back next time.
            fetching.cancel()
        if self._running:
            await self._finished.wait()

    async def _step(self) -> None:
        """One fetch and, if it brought messages, one batch handed on and acked.

        The next batch is fetched while this one commits (the writer thread releases the GIL
        while SQLite writes and fsyncs), so the wait for the server overlaps the work. It is only
        held, never acked, before this batch's acks: a failure here drops it unacked and delivery
        restarts from the lowest unacked message, in order."""
        if not self.nc.is_connected:
            await self._wait_connected()
            return
        if self._sub is None or self._reconnected():
            await self._subscribe()
        sub = self._sub
        assert sub is not None
        if self._stopping.is_set():
            return
        if self._fetching is None:
            self._fetching = self._fetch(sub)
        try:
            numbered, items = await self._fetching
            self._delivery_error = None
        except asyncio.CancelledError:
            if self._stopping.is_set() and not _current_task_cancelling():
                return  # stop() cancelled the fetch, not someone cancelling run()
            raise
        except (nats.errors.TimeoutError, TimeoutError):
            self._delivery_error = None
            # An idle stream is not an error (nats-py's fetch raises its own TimeoutError, or a
            # bare asyncio one when the pull request's reply comes late). The server advances the
            # ack floor a moment after the acks, so the last batch may not have been purged yet:
            # do it now.
            await self._ack_committed()
            if self._purged_below < self._last_acked:
                self._purge_soon()
            return
        finally:
            self._fetching = None
        if not numbered:
            return
        if self._reconnected():
            # Fetched across a reconnect: the server may have restarted with older messages
            # pending that it would redeliver only after ack_wait, after these. Let them go
            # unacked and restart delivery from the lowest unacked sequence.
            await self._unsubscribe()
            return
        if not self._stopping.is_set():
            self._fetching = self._fetch(sub)
        self.fetched += len(numbered)
        # This batch goes to the writer first; the last batch's acks (and the purge) go out while it
        # commits. Ack after commit: a crash before the acks means redelivery, and a redelivered
        # message is recognised, never decided twice. A lost ack means the same.
        committing = asyncio.ensure_future(self.on_batch(items))
        acking = self._ack_committed()
        try:
            await committing
        except Exception as e:
            await asyncio.wait([acking])  # the acks of what was committed before still count
            raise BatchFailed from e
        await acking
        self.batches += 1
        self._unacked = ([m for _, m in numbered], numbered[-1][0])
        if self._fetching is not None and not self._fetching.done():
            # Nothing has come in to hand on yet: ack this batch now, not when the next one comes
            # or the fetch times out, so that the stream drops it at once (SPEC §6).
            self._early_acks = self._ack_committed()

    def _ack_committed(self) -> asyncio.Task[None]:
        """A task acking the last committed batch (after the acks already sent early)."""
        unacked, self._unacked = self._unacked, None
        early, self._early_acks = self._early_acks, None
        return asyncio.ensure_future(self._ack_after(early, unacked))

    async def _ack_after(self, early: asyncio.Task[None] | None, unacked: tuple[list[Msg], int] | None) -> None:
        if early is not None:
            await early  # its failure is this one's: the caller restarts delivery
        if unacked is not None:
            await self._ack(*unacked)

    async def _ack(self, msgs: list[Msg], last: int) -> None:
        # Let the batch submitted just before reach the writer thread first: the acks below do not
        # yield to the event loop, and the writer would wait for all of them.
        await asyncio.sleep(0)
        for m in msgs:
            await m.ack()
        if not self.nc.is_connected:
            # The acks wait in the reconnect buffer; if they are lost the batch comes back as
            # duplicates, in order, since delivery restarts after the reconnect.
            log.warning("jetstream consumer: disconnected while acking %d messages", len(msgs))
            return
        await self.nc.flush(timeout=ACK_FLUSH_TIMEOUT)
        self.acked += len(msgs)
        self._last_acked = last
        self._purge_soon()

    def _purge_soon(self) -> None:
        """Purge up to the last ack once the server's ack floor gets there, in the background."""
        if self._purging is None or self._purging.done():
            self._purging = asyncio.ensure_future(self._purge_in_background())

    async def _purge_in_background(self) -> None:
        try:
            await self._purge_acknowledged(settle=PURGE_WAIT)
            self._purge_error = None
        except Exception as e:  # what is left is purged after the next acks, or when the stream idles
            if not self.nc.is_closed:
                self._purge_error = (f"purging committed messages from the stream failed ({_describe(e)}): "
                                     "they stay in it until a purge succeeds")
                self._purge_store_failed = store_write_failed(e)
                log.warning("jetstream consumer: purge failed: %s", _describe(e))

    async def _purge_acknowledged(self, *, settle: float = 0.0) -> None:
        """The stream is a conveyor, not a record (SPEC §6): drop everything at or below the
        consumer's ack floor. The server only advances that floor over acked messages, and a message
        is acked only after its outcome is committed, so nothing undecided can go. With `settle`,
        keep purging as the floor moves, for up to that many seconds, until it reaches the last
        ack (acks made meanwhile included)."""
        deadline = time.monotonic() + settle
        while True:
            info = await self._js.consumer_info(STREAM, DURABLE)
            floor = int(info.ack_floor.stream_seq) if info.ack_floor is not None else 0
            if floor > self._purged_below:
                await self._js.purge_stream(STREAM, seq=floor + 1)  # purges sequences < seq
                self._purged_below = floor
            if self._purged_below >= self._last_acked or time.monotonic() >= deadline:
                return
            await asyncio.sleep(PURGE_POLL)

    async def _subscribe(self) -> None:
        """(Re)create the durable consumer so delivery starts at the lowest unacked sequence."""
        await self._unsubscribe()
        reconnects = self.nc.stats["reconnects"]
        await ensure_stream(self._js)
        info = await self._js.stream_info(STREAM)
        # Sequences restart when a stream is made anew: its creation instant tells incarnations apart.
        self._stream_key = f"{STREAM}@{info.created.isoformat() if info.created else 'unknown'}"
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_consumer(STREAM, DURABLE)
        await self._js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=DURABLE,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait,
                max_ack_pending=self.batch * 4,
            ),
        )
        self._sub = await self._js.pull_subscribe_bind(DURABLE, stream=STREAM)
        self._reconnects_seen = reconnects

    def _fetch(self, sub: JetStreamContext.PullSubscription) -> asyncio.Task[Fetched]:
        """A fetch, under way while the previous batch commits; it also does the per-message work
        (sequence numbers, Received items), so the writer waits for as little as possible."""
        return asyncio.ensure_future(self._fetch_batch(sub, self._stream_key))

    async def _fetch_batch(self, sub: JetStreamContext.PullSubscription, stream_key: str) -> Fetched:
        # No idle heartbeat: nats-py 2.16 keeps it on a fetch's second pull request while shortening
        # that request's expiry to the time left, which the server refuses ("heartbeat value too
        # large") and which restarted delivery for nothing. A 1 s fetch needs none.
        msgs = await sub.fetch(self.batch, timeout=FETCH_TIMEOUT)
        received_at = self.clock()
        numbered = sorted(((_stream_sequence(m), m) for m in msgs), key=itemgetter(0))  # metadata parsed once
        items = [Received(raw=m.data, via=f"nats:{m.subject}", received_at=received_at, stream=stream_key, seq=seq)
                 for seq, m in numbered]
        return numbered, items

    async def _unsubscribe(self) -> None:
        try:
            await self._ack_committed()  # committed batches are acked before delivery restarts
        except Exception as e:
            if self.nc.is_closed:
                log.debug("jetstream consumer: acks lost with the connection: %s", e)
            else:
                log.warning("jetstream consumer: acks failed: %s; those messages come back as duplicates",
                            _describe(e))
        if self._stopping.is_set() and self.nc.is_connected:
            # No consumer purges after this one: the last acks leave the stream now, not at the
            # next start (as duplicates first).
            if self._purged_below < self._last_acked:
                self._purge_soon()
            if self._purging is not None:
                await self._purging
        fetching, self._fetching = self._fetching, None
        if fetching is not None and fetching is not asyncio.current_task():
            # A fetch ahead holds messages that are not acked: they come back once delivery restarts.
            fetching.cancel()
            await asyncio.wait([fetching])
            if not fetching.cancelled():
                fetching.exception()  # retrieved: a fetch that failed as it was dropped is not news
        sub, self._sub = self._sub, None
        if sub is not None and not self.nc.is_closed:
            try:
                await sub.unsubscribe()
            except Exception as e:  # the inbox dies with the connection anyway
                log.debug("jetstream consumer: unsubscribe failed: %s", e)

    def _reconnected(self) -> bool:
        return bool(self.nc.stats["reconnects"] != self._reconnects_seen)

    async def _wait_connected(self) -> None:
        while not self.nc.is_connected and not self._stopping.is_set():
            if self.nc.is_closed:
                raise nats.errors.ConnectionClosedError
            await self._sleep(0.1)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


# How nats-server words a failed write of its store (ENOSPC, EDQUOT), in an API error's description.
_STORE_WRITE_FAILURES = ("no space left on device", "disk quota exceeded")


def store_write_failed(e: BaseException) -> bool:
    """Whether a JetStream API error says the server could not write its store."""
    description = getattr(e, "description", None) if isinstance(e, nats.js.errors.APIError) else None
    return isinstance(description, str) and any(words in description.lower() for words in _STORE_WRITE_FAILURES)


def _describe(e: Exception) -> str:
    if isinstance(e, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
        return "JetStream did not answer (the consumer is gone or JetStream is not ready yet)"
    return f"{type(e).__name__}: {e}"


def _stream_sequence(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
