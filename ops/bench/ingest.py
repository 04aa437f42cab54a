"""Ingest benchmark: realistic events through JetStream and through HTTP into the log, next to two
baselines measured in the same run on the same machine.

    python -m ops.bench.ingest [--events 100000] [--quick] [--repeat N] [--json] [--tmp DIR] [--skip ...]

Paths measured, each on a fresh data directory, each consumer in its own process, every server
started here on free loopback ports and stopped by pid at the end (also on Ctrl-C or SIGTERM):

- engine via JetStream: `engage up` (its own nats-server, `sync_interval: always`); the bench
  publishes every event with `Nats-Msg-Id` in concurrent windows of 1,000 `js.publish` calls; the
  clock runs from the first publish until the log's head (GET /health) reaches the expected accepted
  count. The workload ends on an accepted event, so by then every earlier message has been decided.
- engine via HTTP: a fresh `engage up`; NDJSON batches of 1,000 POSTed by one client, then (on another
  fresh engine) by two concurrent clients, each owning half of the profiles so that each profile's
  events keep their order; the clock stops at the last answer (the engine answers after the commit).
- (a) ceiling: the same nats-server config, stream (engine.jetstream.ensure_stream) and publish
  pattern; a consumer process with the engine's batch size and consumer settings that does nothing
  but fetch → one SQLite transaction (WAL, synchronous=FULL) inserting (stream sequence, raw bytes)
  → commit → ack each → flush. The clock stops when the last stream sequence is committed.
- (a') and "draining a backlog": the whole workload is published first, with nothing consuming, then
  the ceiling consumer or `engage up` starts; timed on the consumer's ack floor. Publishing into a
  store that fsyncs every message bounds the streaming runs; the drain shows the consumers alone.
- (b) naive: eventsourcing's own Application, one aggregate per profile, `app.save()` once per event
  (parse() first, as the engine does; no hash chain, no encryption), on the library's SQLite module.
  One fsync per event is slow, so it runs on the first 10,000 events only (1,000 with --quick).

Peak RSS is VmHWM from /proc/<pid>/status of the consumer's process (the engine, the ceiling
consumer, the naive process), read just before it stops; nats-server's own VmHWM is shown apart.
`% of ceiling` compares streaming runs and HTTP with (a), drain runs with (a'). With --repeat the
paths run round-robin and the median run of each is reported. Python code runs from the current
directory (`python -m`), so running this from a `git archive` of a commit measures that commit.
This is a measurement, not a test: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from engine.children import alive, children_of
from engine.settings import Settings
from ops.bench.events import SEED, Workload, check, generate
from ops.bench.ports import free_port, free_ports

PUBLISH_WINDOW = 1000
HTTP_BATCH = 1000
ENGINE_BATCH = Settings(data=Path(".")).batch  # the engine's default; the ceiling consumer fetches as many
NAIVE_EVENTS = 10_000
POLL = 0.02  # seconds between checks of "is everything committed?"
START_TIMEOUT = 60.0
RUN_TIMEOUT = 1800.0
CEILING_DURABLE = "bench-ceiling"
MIB = 1024 * 1024
_COMPLAINT = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------------------------


def vmhwm(pid: int | None) -> int | None:
    """Peak resident set size of a live process, in bytes (VmHWM), or None."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class Started:
    """Every process this bench starts, so that `finally` stops exactly those, by pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def popen(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, **(env or {})})
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """SIGTERM (the engine drains and stops its nats-server), SIGKILL after `timeout`."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc, timeout=20)


class Engine:
    """`engage up` on a fresh data directory, on free loopback ports."""

    def __init__(self, started: Started, data: Path, nats_port: int | None = None) -> None:
        self.started = started
        self.data = data
        if nats_port is None:
            self.http_port, self.nats_port = free_ports(2)
        else:
            self.http_port, self.nats_port = next(p for p in free_ports(2) if p != nats_port), nats_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"{data.name}.out"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def nats(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def rss(self) -> int | None:
        """Peak RSS of the engine and its log writer together (two processes since the writer
        moved out, each with its own peak: their sum is an upper bound of the pair's)."""
        engine = vmhwm(self.pid)
        if engine is None or self.pid is None:
            return engine
        return engine + sum(vmhwm(pid) or 0 for pid in children_of(self.pid, b"engine.writer"))

    def nats_pid(self) -> int | None:
        """The nats-server the engine started (its pid file), if it runs our config."""
        try:
            pid = int((self.data / "nats" / "nats-server.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.data).encode() in cmdline else None

    def launch(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "ops.cli", "up", "--data", str(self.data),
               "--listen", f"127.0.0.1:{self.http_port}", "--nats-port", str(self.nats_port)]
        self.proc = self.started.popen(cmd, self.log)
        return self.proc

    def start(self) -> Engine:
        """Launch and return once GET /health answers."""
        self.launch()
        assert self.proc is not None
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engage up exited {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.http + "/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"engage up did not answer within {START_TIMEOUT:.0f} s: {self.tail()}")

    def stop(self) -> None:
        """SIGTERM and wait; a nats-server left behind (it should not be) is stopped by pid too."""
        nats_pid = self.nats_pid()
        if self.proc is not None:
            self.started.stop(self.proc)
        if nats_pid is not None and alive(nats_pid) and self.nats_pid() == nats_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(nats_pid, signal.SIGTERM)

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def complaints(self) -> list[str]:
        """What the engine logged at WARNING or above during the run, summarised (none: [])."""
        if not self.log.exists():
            return []
        lines = [line for line in self.log.read_text(errors="replace").splitlines()
                 if _COMPLAINT.search(line) or line.startswith("Traceback")]
        if not lines:
            return []
        return [f"the engine logged {len(lines)} warnings or errors, the first: {lines[0][:200]}"]

    def log_counts(self) -> tuple[int, Counter[str]]:
        """After stop: (events in the log, rejects by reason), read-only from log.sqlite."""
        uri = f"file:{self.data / 'log.sqlite'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            events = int(db.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])
            rows = db.execute("SELECT reason, COUNT(*) FROM rejects GROUP BY reason").fetchall()
        rejects = Counter({str(reason): int(n) for reason, n in rows})
        return events, rejects


# --- figures ----------------------------------------------------------------------------------------


@dataclass
class Result:
    path: str
    events: int
    seconds: float
    rss: int | None  # bytes, VmHWM of the consumer's process
    nats_rss: int | None = None  # bytes, VmHWM of nats-server
    publish_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    baseline: str = "ceiling"  # which ceiling "% of ceiling" compares with: "ceiling" or "drain"
    kind: str = "engine"  # "engine", "ceiling", "drain" (the drain ceiling) or "naive"

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Expected:
    outcomes: Counter[str]
    accepted: int
    rejected: Counter[str]
    duplicates: int


def expectation(workload: Workload) -> Expected:
    outcomes = check(workload)
    rejected = Counter({k: v for k, v in outcomes.items() if k not in ("accepted", "duplicate")})
    return Expected(outcomes, outcomes["accepted"], rejected, outcomes["duplicate"])


# --- JetStream ---------------------------------------------------------------------------------------


async def publish_all(js: Any, workload: Workload, window: int = PUBLISH_WINDOW) -> tuple[int, int, int]:
    """Publish every event with its id as Nats-Msg-Id, `window` in flight at once.
    Returns (stored, dropped by JetStream as duplicates, last stream sequence)."""
    stored = dropped = last = 0
    lines, ids, subjects = workload.lines, workload.ids, workload.subjects
    for start in range(0, len(lines), window):
        stop = min(start + window, len(lines))
        acks = await asyncio.gather(*(
            js.publish(subjects[i], lines[i], headers={"Nats-Msg-Id": ids[i]}, timeout=120)
            for i in range(start, stop)
        ))
        for ack in acks:
            if ack.duplicate:
                dropped += 1
            else:
                stored += 1
                last = max(last, int(ack.seq))
    return stored, dropped, last


async def wait_for(done: Callable[[], Awaitable[bool]], what: str, timeout: float = RUN_TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not await done():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL)


async def wait_consumer(js: Any, durable: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the consumer's durable exists: publishing starts when something is ready to consume."""
    import nats.js.errors

    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"consumer process exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            await js.consumer_info("TOUCHPOINTS", durable)
            return
        except (nats.js.errors.NotFoundError, nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            await asyncio.sleep(0.05)
    raise RuntimeError(f"consumer {durable} did not appear within {START_TIMEOUT:.0f} s")


async def run_engine_nats(started: Started, workload: Workload, expected: Expected, tmp: Path) -> Result:
    import nats

    from engine.jetstream import DURABLE

    engine = Engine(started, tmp / "engine-nats").start()
    try:
        nc = await nats.connect(engine.nats, name="bench-publisher")
        try:
            js = nc.jetstream()
            assert engine.proc is not None
            await wait_consumer(js, DURABLE, engine.proc, engine.log)
            async with httpx.AsyncClient(base_url=engine.http, timeout=30) as client:
                t0 = time.perf_counter()
                stored, dropped, _ = await publish_all(js, workload)
                published = time.perf_counter() - t0

                async def committed() -> bool:
                    r = await client.get("/health")
                    return int(r.json()["log"]["head"]) >= expected.accepted

                await wait_for(committed, "the engine's log head")
                seconds = time.perf_counter() - t0
        finally:
            await nc.close()
        rss, nats_rss = engine.rss(), vmhwm(engine.nats_pid())
    finally:
        engine.stop()
    events, rejects = engine.log_counts()
    result = Result("engine via JetStream", len(workload), seconds, rss, nats_rss, published)
    result.notes.append(f"JetStream stored {stored}, dropped {dropped} repeated Nats-Msg-Id")
    result.notes.append(_compare(events, rejects, expected))
    result.notes.extend(engine.complaints())
    return result


def _compare(events: int, rejects: Counter[str], expected: Expected) -> str:
    ok = events == expected.accepted and rejects == expected.rejected
    got = ", ".join(f"{k} {v}" for k, v in sorted(rejects.items())) or "none"
    return f"log holds {events} events, rejects: {got}" + ("" if ok else f" (EXPECTED {expected.accepted}, "
                                                                       f"{dict(expected.rejected)})")


# --- HTTP ----------------------------------------------------------------------------------------------


def http_partitions(workload: Workload, clients: int) -> list[list[bytes]]:
    """NDJSON bodies of up to 1,000 events per client; a profile's events all go to one client."""
    if clients == 1:
        owned = [list(range(len(workload)))]
    else:
        owned = [[] for _ in range(clients)]
        for i, key in enumerate(workload.keys):
            owned[zlib.crc32(key.encode()) % clients].append(i)
    bodies: list[list[bytes]] = []
    for indices in owned:
        bodies.append([
            b"".join(workload.lines[i] + b"\n" for i in indices[start:start + HTTP_BATCH])
            for start in range(0, len(indices), HTTP_BATCH)
        ])
    return bodies


async def run_engine_http(started: Started, workload: Workload, expected: Expected, tmp: Path,
                          clients: int) -> Result:
    bodies = http_partitions(workload, clients)
    engine = Engine(started, tmp / f"engine-http-{clients}").start()
    counts: Counter[str] = Counter()
    try:
        async def client(batches: list[bytes]) -> None:
            async with httpx.AsyncClient(base_url=engine.http, timeout=300) as http:
                for body in batches:
                    r = await http.post("/events", content=body, headers={"content-type": "application/x-ndjson"})
                    r.raise_for_status()
                    answer = r.json()
                    counts["accepted"] += answer["accepted"]
                    counts["duplicate"] += answer["duplicates"]
                    for item in answer["rejected"]:
                        counts[item["reason"]] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client(b) for b in bodies))
        seconds = time.perf_counter() - t0
        rss, nats_rss = engine.rss(), vmhwm(engine.nats_pid())
    finally:
        engine.stop()
    events, rejects = engine.log_counts()
    name = "engine via HTTP, 1 client" if clients == 1 else f"engine via HTTP, {clients} clients"
    result = Result(name, len(workload), seconds, rss, nats_rss)
    answered = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    same = counts == expected.outcomes
    result.notes.append(f"answers: {answered}" + ("" if same else f" (EXPECTED {dict(expected.outcomes)})"))
    result.notes.append(_compare(events, rejects, expected))
    result.notes.extend(engine.complaints())
    return result


# --- (a) the ceiling ------------------------------------------------------------------------------------


async def run_ceiling(started: Started, workload: Workload, tmp: Path, *, drain: bool = False) -> Result:
    """(a): streaming (publish while the consumer runs), or draining a backlog published before."""
    import nats

    from engine.jetstream import ensure_stream
    from engine.natsserver import NatsServer

    name = "ceiling-drain" if drain else "ceiling"
    server = NatsServer(tmp / f"{name}-nats", port=0)
    server.start()
    db = tmp / f"{name}.sqlite"
    log = tmp / f"{name}.out"
    cmd = [sys.executable, "-m", "ops.bench.ingest", "--role", "ceiling", "--nats", server.url, "--db", str(db),
           "--batch", str(ENGINE_BATCH)]
    try:
        nc = await nats.connect(server.url, name="bench-publisher")
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            if drain:
                stored, dropped, last = await publish_all(js, workload)
                proc = started.popen(cmd, log)
                events, seconds = await measure_drain(server.url, CEILING_DURABLE, last, proc, log)
                published = None
            else:
                proc = started.popen(cmd, log)
                await wait_consumer(js, CEILING_DURABLE, proc, log)
                t0 = time.perf_counter()
                stored, dropped, last = await publish_all(js, workload)
                published = time.perf_counter() - t0
                await wait_for(lambda: _ceiling_committed(db, last, proc, log), "the ceiling consumer")
                seconds = time.perf_counter() - t0
                events = len(workload)
            rss, nats_rss = vmhwm(proc.pid), vmhwm(server.pid)
            started.stop(proc)
        finally:
            await nc.close()
    finally:
        server.stop()
    if drain:
        result = Result("(a') ceiling, draining a backlog", events, seconds, rss, nats_rss, kind="drain",
                        baseline="drain")
    else:
        result = Result("(a) ceiling: JetStream → SQLite → ack", len(workload), seconds, rss, nats_rss, published,
                        kind="ceiling")
    result.notes.append(f"JetStream stored {stored}, dropped {dropped} repeated Nats-Msg-Id; "
                        "no checks, raw bytes in one table, synchronous=FULL")
    return result


async def _ceiling_committed(db: Path, last: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    """Whether the ceiling consumer has committed stream sequence `last` (read-only, WAL)."""
    _check_running(proc, log)
    if not db.exists():
        return False
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as reader:
        try:
            row = reader.execute("SELECT MAX(seq) FROM messages").fetchone()
        except sqlite3.OperationalError:  # the table is not there yet
            return False
    return row[0] is not None and int(row[0]) >= last


async def measure_drain(url: str, durable: str, last: int, proc: subprocess.Popen[bytes],
                        log: Path) -> tuple[int, float]:
    """Watch a consumer work through a backlog ending at stream sequence `last`: (messages drained,
    seconds), from the first poll that finds its ack floor moved (consumption has begun) to the first
    that finds it at `last`. A message is acked only after its commit, so the floor is what is durable."""
    import nats

    from engine.jetstream import STREAM

    host, port = url.removeprefix("nats://").rsplit(":", 1)
    end = time.monotonic() + START_TIMEOUT
    while not _accepts(host, int(port)):  # a plain TCP poll: nats.connect's own retries are slow
        _check_running(proc, log)
        if time.monotonic() > end:
            raise RuntimeError(f"nothing listens on {url} after {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.005)

    async def quiet(e: Exception) -> None:
        pass

    nc = await nats.connect(url, name="bench-watch", connect_timeout=2, error_cb=quiet)
    try:
        js = nc.jetstream()
        t0: float | None = None
        drained = 0
        end = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < end:
            _check_running(proc, log)
            try:
                info = await js.consumer_info(STREAM, durable)
                floor: int | None = int(info.ack_floor.stream_seq) if info.ack_floor is not None else 0
            except Exception:  # not created yet (the engine re-creates its consumer at start)
                floor = None
            now = time.perf_counter()
            if floor is not None and t0 is None and floor > 0:
                t0, drained = now, last - floor
            if floor is not None and floor >= last and t0 is not None:
                return drained, now - t0
            await asyncio.sleep(POLL)
        raise RuntimeError(f"timed out waiting for consumer {durable} to drain the stream")
    finally:
        await nc.close()


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _check_running(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"consumer process exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")


async def run_engine_drain(started: Started, workload: Workload, expected: Expected, tmp: Path) -> Result:
    """The backlog is published into the engine's own JetStream store before `engage up` starts."""
    import nats

    from engine.jetstream import DURABLE, ensure_stream
    from engine.natsserver import NatsServer

    data = tmp / "engine-drain"
    port = free_port()
    server = NatsServer(data / "nats", port=port)
    server.start()
    try:
        nc = await nats.connect(server.url, name="bench-publisher")
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            stored, dropped, last = await publish_all(js, workload)
        finally:
            await nc.close()
    finally:
        server.stop()
    engine = Engine(started, data, nats_port=port)
    try:
        proc = engine.launch()
        events, seconds = await measure_drain(engine.nats, DURABLE, last, proc, engine.log)
        async with httpx.AsyncClient(base_url=engine.http, timeout=30) as client:

            async def committed() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return int((await client.get("/health")).json()["log"]["head"]) >= expected.accepted
                return False

            await wait_for(committed, "the engine's log head", timeout=START_TIMEOUT)
        rss, nats_rss = engine.rss(), vmhwm(engine.nats_pid())
    finally:
        engine.stop()
    log_events, rejects = engine.log_counts()
    result = Result("engine via JetStream, draining a backlog", events, seconds, rss, nats_rss, baseline="drain")
    result.notes.append(f"JetStream stored {stored}, dropped {dropped} repeated Nats-Msg-Id; published before "
                        "`engage up` started; timed on the consumer's ack floor, from its first move to the end")
    result.notes.append(_compare(log_events, rejects, expected))
    result.notes.extend(engine.complaints())
    return result


async def ceiling_consumer(url: str, db: Path, batch: int) -> None:
    """The ceiling's consumer process: fetch → one SQLite transaction → commit → ack each → flush."""
    import nats
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    conn.execute("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, raw BLOB NOT NULL)")
    nc = await nats.connect(url, name="bench-ceiling")
    js = nc.jetstream()
    await js.add_consumer("TOUCHPOINTS", ConsumerConfig(
        durable_name=CEILING_DURABLE, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30, max_ack_pending=batch * 4,
    ))
    sub = await js.pull_subscribe_bind(CEILING_DURABLE, stream="TOUCHPOINTS")
    while True:  # until SIGTERM
        try:
            msgs = await sub.fetch(batch, timeout=1.0, heartbeat=0.25)
        except nats.errors.TimeoutError:
            continue
        except nats.js.errors.APIError as e:
            # nats-py 2.16 may ask for a heartbeat larger than half of what is left of an idle
            # fetch's timeout; the server refuses that request ("heartbeat value too large").
            print(f"fetch: {e}", file=sys.stderr, flush=True)
            continue
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO messages VALUES (?, ?)",
                         [(m.metadata.sequence.stream, m.data) for m in msgs])
        conn.execute("COMMIT")
        for m in msgs:
            await m.ack()
        await nc.flush(timeout=2)


# --- (b) naive ----------------------------------------------------------------------------------------------


def run_naive(started: Started, workload: Workload, count: int, tmp: Path) -> Result:
    source = tmp / "naive-input.ndjson"
    source.write_bytes(workload.ndjson(0, count))
    log = tmp / "naive.out"
    proc = started.popen([sys.executable, "-m", "ops.bench.ingest", "--role", "naive", "--input", str(source),
                          "--db", str(tmp / "naive.sqlite"), "--report", str(tmp / "naive.json")], log)
    try:
        code = proc.wait(RUN_TIMEOUT)
    finally:
        started.stop(proc)
    if code != 0:
        raise RuntimeError(f"the naive run exited {code}: {log.read_text(errors='replace')[-2000:]}")
    report = json.loads((tmp / "naive.json").read_text())
    result = Result("(b) naive: one eventsourcing save per event", report["events"], report["seconds"], report["rss"],
                    kind="naive")
    result.notes.append(f"{report['saved']} saves (one per accepted event, {report['skipped']} refused by parse() "
                        f"or repeated), eventsourcing.sqlite, synchronous={report['synchronous']}")
    return result


def naive_process(source: Path, db: Path, report: Path) -> None:
    """The naive path, in its own process: parse(), then one Application.save() per event."""
    import resource

    os.environ.update({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)})
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    from commands.outcomes import Rejected
    from commands.parsing import parse
    from commands.touchpoints import profile_key, to_wire

    class Profile(Aggregate):
        def __init__(self, key: str) -> None:
            self.key = key
            self.touchpoints = 0

        @event("Touched")
        def touch(self, touchpoint: dict[str, Any]) -> None:
            self.touchpoints += 1

    class Touchpoints(Application[Any]):
        pass

    app = Touchpoints()
    profiles: dict[str, Profile] = {}
    seen: set[str] = set()
    lines = [line for line in source.read_bytes().split(b"\n") if line]
    saved = skipped = 0
    t0 = time.perf_counter()
    for raw in lines:
        tp = parse(raw, datetime.now(UTC))
        if isinstance(tp, Rejected) or tp.id in seen:
            skipped += 1
            continue
        seen.add(tp.id)
        key = profile_key(tp)
        profile = profiles.get(key)
        if profile is None:
            profile = profiles[key] = Profile(key)
        profile.touch(json.loads(json.dumps(to_wire(tp), default=str)))
        app.save(profile)
        saved += 1
    seconds = time.perf_counter() - t0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report.write_text(json.dumps({"events": len(lines), "seconds": seconds, "rss": vmhwm(os.getpid()) or rss,
                                  "saved": saved, "skipped": skipped,
                                  "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(synchronous)}))


# --- the report ------------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    from engine.natsserver import find_binary

    nats_version = "?"
    binary = find_binary()
    if binary is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            nats_version = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                                          timeout=10).stdout.strip()
    return {
        "cpus": str(os.cpu_count()),
        "cpus usable": str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "?",
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "nats-server": nats_version,
        "kernel": platform.release(),
    }


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def _ceiling_of(r: Result, results: list[Result]) -> Result | None:
    return next((c for c in results if c.kind == r.baseline), None)


def _naive_of(results: list[Result]) -> Result | None:
    return next((c for c in results if c.kind == "naive"), None)


def table(results: list[Result]) -> str:
    head = ["path", "events", "seconds", "events/s", "peak RSS MiB", "% of ceiling", "× naive", "nats-server MiB"]
    rows = [head]
    naive = _naive_of(results)
    for r in results:
        ceiling = _ceiling_of(r, results)
        rows.append([
            r.path, f"{r.events:,}", f"{r.seconds:.2f}", f"{r.rate:,.0f}", _mib(r.rss),
            f"{100 * r.rate / ceiling.rate:.0f} %" if ceiling else "-",
            f"{r.rate / naive.rate:.1f}×" if naive else "-",
            _mib(r.nats_rss),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = ["| " + " | ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
           + " |" for row in rows]
    out.insert(1, "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|")
    return "\n".join(out)


def report_json(results: list[Result], info: dict[str, Any]) -> str:
    items = []
    naive = _naive_of(results)
    for r in results:
        ceiling = _ceiling_of(r, results)
        item = asdict(r)
        item["events_per_second"] = r.rate
        item["percent_of_ceiling"] = 100 * r.rate / ceiling.rate if ceiling else None
        item["times_naive"] = r.rate / naive.rate if naive else None
        items.append(item)
    return json.dumps({**info, "results": items}, indent=2, ensure_ascii=False)


# --- main --------------------------------------------------------------------------------------------------------


async def _measure(started: Started, workload: Workload, expected: Expected, tmp: Path, skip: set[str],
                   repeat: int) -> list[Result]:
    """Every path `repeat` times, round-robin (so slow spells of a shared machine hit all paths),
    each run on a fresh directory; per path, the run with the median events/s is kept."""
    steps: list[tuple[str, str, Callable[[Path], Awaitable[Result]]]] = [
        ("ceiling", "(a) ceiling", lambda d: run_ceiling(started, workload, d)),
        ("nats", "engine via JetStream", lambda d: run_engine_nats(started, workload, expected, d)),
        ("drain", "(a') ceiling, draining a backlog", lambda d: run_ceiling(started, workload, d, drain=True)),
        ("drain", "engine via JetStream, draining a backlog",
         lambda d: run_engine_drain(started, workload, expected, d)),
        ("http", "engine via HTTP, 1 client", lambda d: run_engine_http(started, workload, expected, d, 1)),
        ("http2", "engine via HTTP, 2 clients", lambda d: run_engine_http(started, workload, expected, d, 2)),
    ]
    steps = [step for step in steps if step[0] not in skip]
    runs: dict[str, list[Result]] = {name: [] for _, name, _ in steps}
    count = 0
    for round_ in range(repeat):
        for _, name, step in steps:
            count += 1
            run_dir = tmp / f"run-{count:02d}"
            run_dir.mkdir()
            say(f"-- {name}: {len(workload):,} events" + (f" (round {round_ + 1} of {repeat})" if repeat > 1 else "")
                + " ...")
            result = await step(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
            say(f"   {result.seconds:.2f} s, {result.rate:,.0f} events/s"
                + (f" (publishing alone took {result.publish_seconds:.2f} s)" if result.publish_seconds else ""))
            for note in result.notes:
                say(f"   {note}")
            runs[name].append(result)
    return [median_run(results) for results in runs.values()]


def median_run(results: list[Result]) -> Result:
    if len(results) == 1:
        return results[0]
    ordered = sorted(results, key=lambda r: r.rate)
    kept = ordered[(len(ordered) - 1) // 2]
    kept.notes.insert(0, "median of " + ", ".join(f"{r.rate:,.0f}" for r in results) + " events/s")
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.ingest", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events per path (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 events, 1,000 for the naive path")
    parser.add_argument("--naive-events", type=int, help=f"events for the naive path (default {NAIVE_EVENTS:,})")
    parser.add_argument("--seed", type=int, default=SEED, help="the workload's seed")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per path, round-robin; the median is reported (default 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--tmp", type=Path, help="where the temporary directory goes (default: the system's)")
    parser.add_argument("--skip", default="", help="comma-separated: ceiling,nats,drain,http,http2,naive")
    parser.add_argument("--role", choices=("ceiling", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--nats", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=ENGINE_BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role == "ceiling":
        asyncio.run(ceiling_consumer(args.nats, args.db, args.batch))
        return 0
    if args.role == "naive":
        naive_process(args.input, args.db, args.report)
        return 0

    events = 10_000 if args.quick and args.events == 100_000 else args.events
    naive_events = args.naive_events or min(events, 1_000 if args.quick else NAIVE_EVENTS)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    info: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                            "events": events, "naive_events": naive_events, "seed": args.seed,
                            "repeat": args.repeat}
    say("machine: " + ", ".join(f"{k} {v}" for k, v in info["machine"].items()))

    say(f"-- generating {events:,} events (seed {args.seed}) and checking them with parse()/decide() ...")
    workload = generate(events, seed=args.seed)
    expected = expectation(workload)
    info["workload"] = {"bytes": sum(len(line) for line in workload.lines), "profiles": len(set(workload.keys)),
                        "identity_share": round(workload.identity_share(), 4), "outcomes": dict(expected.outcomes)}
    say("   expected outcomes: " + ", ".join(f"{k} {v}" for k, v in expected.outcomes.most_common()))

    started = Started()
    tmp = Path(tempfile.mkdtemp(prefix="engage-bench-", dir=args.tmp))
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        results = asyncio.run(_measure(started, workload, expected, tmp, skip, args.repeat))
        if "naive" not in skip:
            naive_runs = []
            for round_ in range(args.repeat):
                say(f"-- (b) naive: {naive_events:,} events, one save each (slow)"
                    + (f" (round {round_ + 1} of {args.repeat})" if args.repeat > 1 else "") + " ...")
                run_dir = tmp / f"naive-{round_ + 1:02d}"
                run_dir.mkdir()
                naive = run_naive(started, workload, naive_events, run_dir)
                shutil.rmtree(run_dir, ignore_errors=True)
                say(f"   {naive.seconds:.2f} s, {naive.rate:,.0f} events/s; {naive.notes[0]}")
                naive_runs.append(naive)
            results.append(median_run(naive_runs))
    finally:
        started.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)

    if args.json:
        print(report_json(results, info))
        return 0
    print(f"Ingest benchmark, {info['date']}: {events:,} events per path "
          f"({naive_events:,} for the naive path), seed {args.seed}"
          + (f", median of {args.repeat} runs" if args.repeat > 1 else ""))
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info["machine"].items()))
    print()
    print(table(results))
    print()
    for r in results:
        extra = [f"publishing alone {r.publish_seconds:.2f} s"] if r.publish_seconds else []
        print(f"- {r.path}: " + "; ".join([*extra, *r.notes]))
    return 0


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`: processes stopped, temp dir removed


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted: stopped what this bench started and removed its temporary directory")
        sys.exit(130)
