"""Wires the parts from Settings: the log, ingest, nats-server, the JetStream consumer and HTTP.

`run` carries on where the last run stopped (the log's head, the stream's unacked messages) and
stops cleanly on SIGINT/SIGTERM: HTTP stops taking requests and finishes those in flight, the
consumer commits and acks its in-flight batch, then nats-server and the log close.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import shutil
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from nats.aio.client import Client

from commands.outcomes import Outcome
from engine import jetstream
from engine.access import ENGINE_USER, Access
from engine.datalock import DataLock
from engine.ingest import Ingest
from engine.log import DAMAGED, Log, LogDamaged, LogError, on_read_only_media
from engine.natsserver import NatsServer, NatsServerError
from engine.received import Received
from engine.settings import REPLAY_MARKER, Settings, UsageError, without_credentials
from engine.writer import FollowingLog, WriterProcess
from ops.api import build_app
from projections.reads import Reads
from projections.runner import RunnerProcess
from projections.store import connect, foreign_to, remove

log = logging.getLogger("engage.runtime")

# Our nats-server is restarted after it failed to write its store once its file system has this
# much room again (a few of its message blocks), and not more often than this.
STORE_ROOM = 16 * 1024 * 1024
STORE_RESTART_EVERY = 30.0


# uvicorn.Config(log_config=None): uvicorn's loggers keep no handlers of their own and reach the
# engine's (engine/logs.py: JSON Lines when not on a terminal), as every other line does.


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `run` owns SIGINT/SIGTERM and the order of shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it (Linux): without it a kept-alive client waited ~40 ms per
    # answer (Nagle against the client's delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"{host}:{port} is in use: choose another with --listen HOST:PORT (0 picks one)") from e
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    # No listen() here: asyncio listens when uvicorn starts serving, after the stream exists, so
    # "the HTTP port accepts connections" means "the engine is ready".
    sock.set_inheritable(True)
    return sock


async def run(settings: Settings, *, announce: Callable[[str], None] = print) -> None:
    if settings.read_only:
        await serve_read_only(settings, announce)
        return
    if (settings.data / REPLAY_MARKER).exists():
        raise UsageError(f"{settings.data} holds a replay (engage replay): serve it with --read-only")
    # Ports first: an `up` refused for a port in use writes nothing (no empty log, no data directory).
    sock = bind(settings.listen_host, settings.listen_port)
    try:
        if settings.nats_url is None:
            _nats_port_free(_nats_host(settings), settings.nats_port)
        lock = DataLock(settings.data)
        lock.acquire()
        try:
            await _run_locked(settings, announce, lock, sock)
        finally:
            lock.release()
    finally:
        sock.close()


def _nats_host(settings: Settings) -> str:
    """Where the engine's own nats-server listens: beside HTTP with --auth, else on loopback only."""
    return settings.listen_host if settings.auth is not None else "127.0.0.1"


def _nats_port_free(host: str, port: int) -> None:
    """A port nats-server could not take, said before anything is written (it says it too, later)."""
    if port == 0:
        return
    try:
        bind(host, port).close()
    except UsageError:
        raise UsageError(f"NATS port {host}:{port} is already in use: choose another with --nats-port "
                         "(0 picks a free one)") from None


async def _run_locked(settings: Settings, announce: Callable[[str], None], lock: DataLock,
                      sock: socket.socket) -> None:
    access = None if settings.auth is None else Access.load(settings.auth)
    writer = WriterProcess(settings.log_path, keep_fds=[lock.fd])
    try:
        writer.start()  # from the main thread: the writer's parent-death signal is tied to this thread
    except LogDamaged:
        raise  # the file, not the user's mistake: exit 1
    except LogError as e:
        raise UsageError(str(e)) from e
    ingest = Ingest(writer)
    try:
        log_ = FollowingLog(settings.log_path, writer)
    except LogDamaged:
        ingest.close()
        raise
    except LogError as e:
        ingest.close()
        raise UsageError(str(e)) from e
    stack = contextlib.AsyncExitStack()
    async with stack:
        stack.callback(ingest.close)
        stack.callback(log_.close)
        foreign = foreign_to(settings.read_path, log_.hash_at)
        if foreign is not None:  # derived data: folded again from the log that is here
            log.warning("the read models in %s were not folded from this log (%s): folding them again",
                        settings.read_path, foreign)
            remove(settings.read_path)
        try:
            connect(settings.read_path).close()  # the schema, once, before the runner and the readers open it
        except sqlite3.DatabaseError as e:
            if getattr(e, "sqlite_errorcode", None) not in DAMAGED:
                raise
            log.warning("the read models in %s are damaged (%s): folding them again", settings.read_path, e)
            remove(settings.read_path)
            connect(settings.read_path).close()
        runner = RunnerProcess(settings.log_path, settings.read_path)
        runner.start()
        stack.callback(runner.stop)
        reads = Reads(settings.read_path, settings.log_path)
        await reads.open()
        stack.push_async_callback(reads.close)
        nats_url = settings.nats_url
        if nats_url is None:
            server = NatsServer(settings.nats_dir, host=_nats_host(settings),
                                port=settings.nats_port,
                                authorization=access.nats_authorization() if access else ())
            # From the main thread, not a worker: the child's parent-death signal is tied to the
            # thread that started it, and a pool thread may exit while the engine runs on.
            server.start()
            stack.callback(server.stop)
            nats_url = server.url
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        stack.callback(_remove_signal_handlers, loop)
        nc = await _first_connection(_with_user(nats_url, access), stopping, announce)
        if nc is None:
            announce("engage up: stopped")
            return
        stack.push_async_callback(_close_nats, nc)
        await jetstream.ensure_stream(nc.jetstream())

        async def on_batch(items: Sequence[Received]) -> list[Outcome]:
            outcomes = await ingest.submit(items, "nats")
            if settings.fault == "kill-after-commit":
                os.kill(os.getpid(), signal.SIGKILL)  # committed, never acknowledged
            return outcomes

        consumer = jetstream.Consumer(nc, on_batch, batch=settings.batch, ack_wait=settings.ack_wait)
        app = build_app(log_, ingest, reads, runner, access=access, commit_timeout=settings.commit_timeout,
                        consumer=consumer)
        http = _Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, log_config=None))

        supervising = asyncio.create_task(
            _supervise(server if settings.nats_url is None else None, runner, stopping, consumer), name="supervisor")
        stack.push_async_callback(_cancel, supervising)
        consuming = asyncio.create_task(consumer.run(), name="jetstream-consumer")
        serving = asyncio.create_task(http.serve(sockets=[sock]), name="http")
        while not http.started and not serving.done():  # announce only what already answers
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        announce(f"engage up: data in {settings.data} (log head at position {log_.head.position})")
        announce(f"  nats  {without_credentials(nats_url)}  (publish to touchpoints.>)")
        announce(f"  http  http://{_host_for_url(host)}:{port}  (the dashboard; POST /events; GET /customers/KEY, "
                 "/cases/ID, /stats, /rejects, /health, /metrics; OpenAPI at /schema)")

        watched: set[asyncio.Task[Any]] = {consuming, serving}
        waiting = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait({*watched, waiting}, return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in done if t is not waiting and t.exception() is not None]
        announce("engage up: stopping (finishing in-flight work)")
        http.should_exit = True
        await consumer.stop()
        await asyncio.gather(consuming, serving, return_exceptions=True)
        waiting.cancel()
        _remove_signal_handlers(loop)
        if crashed:
            raise crashed[0].exception()  # type: ignore[misc]
    announce("engage up: stopped")


async def serve_read_only(settings: Settings, announce: Callable[[str], None]) -> None:
    """Serve the read API over a data directory as it is (a replay, or a copy): no ingest, no NATS,
    no runner; the read models stand at the position they were built to."""
    if not settings.read_path.is_file():
        raise UsageError(f"no read models at {settings.read_path}: build them with engage replay or engage rebuild")
    if on_read_only_media(settings.read_path):  # nothing can replace them there, nor take a lock
        await _serve_read_only_locked(settings, announce)
        return
    lock = DataLock(settings.data, shared=True)  # no rebuild replaces the read models under us
    lock.acquire()
    try:
        await _serve_read_only_locked(settings, announce)
    finally:
        lock.release()


async def _serve_read_only_locked(settings: Settings, announce: Callable[[str], None]) -> None:
    try:
        log_ = Log(settings.log_path, create=False)
    except LogDamaged:
        raise
    except LogError as e:
        raise UsageError(str(e)) from e
    foreign = foreign_to(settings.read_path, log_.hash_at)
    if foreign is not None:
        log_.close()
        raise UsageError(f"the read models in {settings.read_path} were not folded from the log beside them "
                         f"({foreign}): run engage rebuild --data {settings.data}, or replay again")
    stack = contextlib.AsyncExitStack()
    async with stack:
        stack.callback(log_.close)
        sock = bind(settings.listen_host, settings.listen_port)
        stack.callback(sock.close)
        reads = Reads(settings.read_path, settings.log_path)
        await reads.open()
        stack.push_async_callback(reads.close)
        access = None if settings.auth is None else Access.load(settings.auth)
        http = _Server(uvicorn.Config(build_app(log_, None, reads, access=access), log_level="warning",
                                      lifespan="on", access_log=False, log_config=None))
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        serving = asyncio.create_task(http.serve(sockets=[sock]), name="http")
        while not http.started and not serving.done():
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        announce(f"engage up --read-only: {settings.data} at position {await reads.position()}")
        announce(f"  http  http://{_host_for_url(host)}:{port}  "
                 "(the dashboard; GET /customers, /cases, /stats, /rejects, /health, /metrics)")
        waiting = asyncio.create_task(stopping.wait())
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        http.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        waiting.cancel()
    announce("engage up: stopped")


async def _supervise(server: NatsServer | None, runner: RunnerProcess, stopping: asyncio.Event,
                    consumer: jetstream.Consumer | None = None) -> None:
    """What the engine started comes back if it dies. Its own nats-server: same port, same store
    (what JetStream acknowledged was fsynced), and the consumer resumes from the lowest unacked
    message. Also when it failed to write its store (a full disk): nats-server keeps failing that
    stream after room is made, until it restarts, so the engine restarts it once the store's file
    system has room again (at most every STORE_RESTART_EVERY seconds). The projection runner: it
    carries on from its tracking position."""
    down = False  # our nats-server is to be started again (until a start succeeds)
    restarted_for_store = -math.inf
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=1)
        if stopping.is_set():
            break
        runner.poll()
        if server is None:
            continue
        code = server.exit_code()
        if code is not None:
            log.error("nats-server exited with code %s; starting it again", code)
            down = True
        elif (not down and consumer is not None and consumer.store_failed
              and time.monotonic() - restarted_for_store >= STORE_RESTART_EVERY and has_room(server.store_dir)):
            restarted_for_store = time.monotonic()
            log.warning("nats-server failed to write its JetStream store (a full disk?) and keeps failing the "
                        "stream; there is room in %s again: restarting it", server.store_dir)
            await asyncio.to_thread(server.stop)  # SIGTERM, and up to 10 s: off the event loop
            down = True
        if down:
            try:
                server.start()  # on the main thread, like the first start
                down = False
            except NatsServerError as e:
                log.error("nats-server did not start again: %s; retrying", e)


def has_room(directory: Path) -> bool:
    """Whether the file system of `directory` has STORE_ROOM bytes free for an unprivileged writer."""
    try:
        return shutil.disk_usage(directory).free >= STORE_ROOM
    except OSError:
        return False


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_nats(nc: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.drain(), timeout=5)
    with contextlib.suppress(Exception):
        await nc.close()


# How long the first connection to NATS may take before `up` says it is waiting for it.
SAY_WAITING_AFTER = 3.0


async def _first_connection(url: str, stopping: asyncio.Event,
                            announce: Callable[[str], None]) -> Client | None:
    """The connection to NATS, however long the server takes to answer (it may be starting too);
    None when the engine is stopped first (SIGINT/SIGTERM stop it cleanly while it waits). A
    server that refuses the credentials will not change its mind: a UsageError, not a wait."""
    refused = asyncio.Event()

    def refuse(message: str) -> bool:
        if connecting.done():
            return False  # once connected, a refusal (a server's users changed) is logged as any error
        refused.set()
        return True

    connecting = asyncio.create_task(jetstream.connect(url, on_refused=refuse), name="nats-connect")
    stop = asyncio.create_task(stopping.wait())
    no = asyncio.create_task(refused.wait())
    waits = {connecting, stop, no}
    done, _ = await asyncio.wait(waits, timeout=SAY_WAITING_AFTER, return_when=asyncio.FIRST_COMPLETED)
    if not done:
        announce(f"engage up: waiting for NATS at {without_credentials(url)} (is it running? Ctrl-C stops)")
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    no.cancel()
    if connecting in done:
        return connecting.result()
    await cancelled(connecting)
    if no in done:
        raise UsageError(f"NATS at {without_credentials(url)} refused the engine's credentials (authorization "
                         "violation): give a user allowed to use JetStream in the URL, nats://USER:PASSWORD@host:port "
                         "(ENGAGE_NATS keeps it out of the process list)")
    return None


async def cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended, cancelling it again as long as it runs. nats-py's
    connect loop can lose a cancellation: in Python 3.11 `asyncio.wait_for` swallows one that
    lands as a connection attempt fails, and the loop takes the failure for one more server that
    did not answer and tries again. Waiting once for the cancelled connect then never ended (CI
    saw `engage up --nats` hang on SIGTERM while it waited for a server)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)


def _with_user(url: str, access: Access | None) -> str:
    """The engine's own NATS credentials in the URL of the server it started with --auth."""
    if access is None:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{ENGINE_USER}:{quote(access.engine_password, safe='')}@{rest}"


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
