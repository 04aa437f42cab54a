"""Rebuild benchmark: a full rebuild of the read models from a large log, next to the read ceiling
measured in the same run, and the read API's latency over the rebuilt models.

    python -m ops.bench.rebuild [--events 1000000] [--quick] [--repeat N] [--tmp DIR]

Steps, in a temporary directory removed at the end (also on failure, Ctrl-C or SIGTERM):

- write: a realistic workload (ops.bench.events.generate, one call, customers = max(10,000, N / 50))
  committed in-process through the engine's own write path, `Log.commit`, in batches of 1,000
  (parse, decide, encrypt, hash chain, synchronous=FULL). The write rate is reported too.
- at each checkpoint (100,000 events, then N), each measurement in a fresh process of its own so
  that its peak RSS (VmHWM) is its own:
  (a) read ceiling: `Log(create=False).iter_records(page=5000)`, every record read, nothing folded;
  (b) full rebuild: a fresh bulk `Projector` on a new file, pages of 5,000 records read ahead by a
      reader process (engine/readahead.py) applied with `respan=False`, then one
      `apply([], respan=True)` (what `engage rebuild` does). `% of ceiling` is (b) / (a) in events/s.
      The rebuild uses two processes, the ceiling one: the reader's CPU time is its own. Its peak
      RSS adds the largest child's VmHWM (the reader or the sweep helper), sampled from /proc;
  (c) latency: the rebuilt file goes in as the data directory's `read.sqlite`, `engage up --read-only`
      starts on a free loopback port, then 200 sequential GET /customers/{key} over random existing
      profile keys and 50 GET /stats, a fresh connection each (as curl); p50/p99 in ms, and the
      engine's VmHWM. GET /health is timed on fresh connections and on one kept-alive connection:
      the engine answered a kept-alive connection ~40 ms late (a Nagle / delayed-ACK stall).

With --repeat N, (a) and (b) run N times at each checkpoint, alternately (a, b, a, b, ...): this
machine is shared, and the read ceiling alone moved between 141k and 188k events/s within minutes.
The table then shows the median ceiling and the median rebuild, `% of ceiling` is the median of the
N ratios of a rebuild to the ceiling measured just before it (their range is printed below), and
the rebuild's peak RSS is the largest of the N.

"events" counts the log's records (accepted events), not the inputs: ~1 % of the workload are
schema errors or duplicates and end as rejects. This is a measurement, not a test: nothing here
asserts a speed. Every process started here is stopped by pid.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from engine.children import children_of
from ops.bench.ingest import MIB, Started, _terminate, machine, say, vmhwm
from ops.bench.ports import free_port

BATCH = 1000
CHECKPOINT = 100_000
CUSTOMER_GETS = 200
STATS_GETS = 50
KEEPALIVE_GETS = 20
START_TIMEOUT = 60.0
RUN_TIMEOUT = 3600.0


@dataclass
class Checkpoint:
    events: int  # records in the log
    inputs: int  # inputs committed (accepted + rejected)
    write_rate: float  # inputs/s through Log.commit, cumulative up to this checkpoint
    read: dict[str, Any]  # the median of the runs of (a), by events/s
    rebuild: dict[str, Any]  # the median of the runs of (b), by events/s; its rss the largest of them
    latency: dict[str, Any]
    ratios: list[float]  # each rebuild's events/s over the ceiling's measured just before it

    @property
    def percent(self) -> float:
        """% of ceiling: the median of the pairs' ratios."""
        return 100 * _median(self.ratios)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _rate(run: dict[str, Any]) -> float:
    return float(run["events"]) / float(run["seconds"])


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=_rate)[len(runs) // 2]


# --- measurements in a process of their own ----------------------------------------------------------


def read_role(log_path: Path, report: Path) -> None:
    from engine.log import Log
    from projections.projector import PAGE  # read in the pages a rebuild folds

    log = Log(log_path, create=False)
    try:
        t0 = time.perf_counter()
        count = size = 0
        for record in log.iter_records(page=PAGE):
            count += 1
            size += len(record)
        seconds = time.perf_counter() - t0
    finally:
        log.close()
    report.write_text(json.dumps({"events": count, "bytes": size, "seconds": seconds, "rss": vmhwm(os.getpid())}))


def rebuild_role(log_path: Path, into: Path, report: Path) -> None:
    from engine import readahead
    from engine.log import Log
    from projections.projector import PAGE, Projector

    log = Log(log_path, create=False)
    projector = Projector(into, bulk=True)
    try:
        with ChildPeaks() as children:
            upto = log.head.position
            t0 = time.perf_counter()
            position = projector.position
            for page in readahead.pages(log_path, position, upto, PAGE):  # as ops.replay._fold
                position = projector.apply(page, respan=False)
            if position != upto:
                raise RuntimeError(f"the log ends at {position}, before {upto}")
            t_fold = time.perf_counter() - t0
            projector.apply([], respan=True)
            seconds = time.perf_counter() - t0
    finally:
        projector.close()
        log.close()
    own = vmhwm(os.getpid())
    report.write_text(json.dumps({"events": position, "seconds": seconds, "respan_seconds": seconds - t_fold,
                                  "rss": None if own is None else own + children.peak}))


FIND_EVERY = 10  # samples between looks for new children


class ChildPeaks:
    """The largest peak RSS among this process's children while it runs (the log's reader, the
    sweep helper), sampled from /proc every `every` seconds. Not RUSAGE_CHILDREN: a child forked
    with a preexec_fn carries the parent's resident pages until it execs, and the kernel keeps
    that in its ru_maxrss, which would count the parent's memory twice."""

    def __init__(self, every: float = 0.02) -> None:
        self.peak = 0
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="child-peaks", daemon=True)

    def __enter__(self) -> ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        known: list[int] = []
        ticks = 0
        while not self._stop.wait(self._every):
            if ticks % FIND_EVERY == 0:  # a scan of /proc costs more than reading a few status files
                known = children_of(os.getpid(), b"-m")
            ticks += 1
            for pid in known:  # VmHWM only grows: the last sample before a child exits counts
                self.peak = max(self.peak, vmhwm(pid) or 0)


def in_process(started: Started, role: list[str], out: Path, report: Path) -> dict[str, Any]:
    proc = started.popen([sys.executable, "-m", "ops.bench.rebuild", "--role", *role, "--report", str(report)], out)
    try:
        code = proc.wait(RUN_TIMEOUT)
    finally:
        started.stop(proc)
    if code != 0:
        raise RuntimeError(f"{role[0]} exited {code}: {out.read_text(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(report.read_text())
    return result


# --- latency over engage up --read-only ---------------------------------------------------------------------


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _timed(client: httpx.Client, path: str, statuses: dict[int, int]) -> float:
    t0 = time.perf_counter()
    r = client.get(path)
    seconds = time.perf_counter() - t0
    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    return seconds


def latency(started: Started, data: Path, rebuilt: Path, tmp: Path, seed: int) -> dict[str, Any]:
    target = data / "read.sqlite"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{target}{suffix}").unlink()
    shutil.copyfile(rebuilt, target)
    with contextlib.closing(sqlite3.connect(f"file:{target}?mode=ro", uri=True)) as db:
        keys = [str(k) for (k,) in db.execute("SELECT key FROM profiles")]
    port = free_port()
    out = tmp / "engine.out"
    proc = started.popen([sys.executable, "-m", "ops.cli", "up", "--data", str(data), "--read-only",
                          "--listen", f"127.0.0.1:{port}"], out)
    base = f"http://127.0.0.1:{port}"
    try:
        # A fresh connection per request, as curl makes: on a kept-alive connection every answer of
        # this server came ~40 ms late (a Nagle / delayed-ACK stall), measured apart as `keepalive_health`.
        with httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            end = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"engage up --read-only exited {proc.returncode}: "
                                       f"{out.read_text(errors='replace')[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/health").status_code == 200:
                        break
                if time.monotonic() > end:
                    raise RuntimeError(f"engage up --read-only did not answer within {START_TIMEOUT:.0f} s")
                time.sleep(0.1)
            rng = random.Random(seed)
            statuses: dict[int, int] = {}
            customers = [_timed(client, f"/customers/{quote(key, safe='')}", statuses)
                         for key in rng.choices(keys, k=CUSTOMER_GETS)]
            stats = [_timed(client, "/stats", statuses) for _ in range(STATS_GETS)]
            health = [_timed(client, "/health", statuses) for _ in range(KEEPALIVE_GETS)]
        with httpx.Client(base_url=base, timeout=30) as client:
            kept = [_timed(client, "/health", statuses) for _ in range(KEEPALIVE_GETS)]
        rss = vmhwm(proc.pid)
    finally:
        started.stop(proc)
    return {"profiles": len(keys), "customers_p50": _percentile(customers, 50) * 1000,
            "customers_p99": _percentile(customers, 99) * 1000, "stats_p50": _percentile(stats, 50) * 1000,
            "stats_p99": _percentile(stats, 99) * 1000, "rss": rss, "statuses": statuses,
            "health_p50": _percentile(health, 50) * 1000, "keepalive_health_p50": _percentile(kept, 50) * 1000}


def checkpoint(started: Started, data: Path, tmp: Path, inputs: int, write_rate: float, seed: int,
               repeat: int) -> Checkpoint:
    log_path = data / "log.sqlite"
    work = tmp / f"at-{inputs}"
    work.mkdir()
    reads: list[dict[str, Any]] = []
    rebuilds: list[dict[str, Any]] = []
    rebuilt = work / "read.sqlite"
    for round_ in range(repeat):
        of = f" (round {round_ + 1} of {repeat})" if repeat > 1 else ""
        say(f"   (a) read ceiling{of} ...")
        read = in_process(started, ["read", "--log", str(log_path)], work / "read.out", work / "read.json")
        say(f"       {read['events']:,} records, {read['bytes'] / MIB:.0f} MiB, {read['seconds']:.2f} s, "
            f"{_rate(read):,.0f} events/s")
        say(f"   (b) full rebuild{of} ...")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{rebuilt}{suffix}").unlink(missing_ok=True)
        rebuild = in_process(started, ["rebuild", "--log", str(log_path), "--into", str(rebuilt)],
                             work / "rebuild.out", work / "rebuild.json")
        say(f"       {rebuild['seconds']:.2f} s (respan {rebuild['respan_seconds']:.2f} s), "
            f"{_rate(rebuild):,.0f} events/s, {100 * _rate(rebuild) / _rate(read):.0f} % of the ceiling just before")
        reads.append(read)
        rebuilds.append(rebuild)
    say("   (c) latency over engage up --read-only ...")
    lat = latency(started, data, rebuilt, work, seed)
    say(f"       GET /customers p50 {lat['customers_p50']:.1f} ms p99 {lat['customers_p99']:.1f} ms, "
        f"GET /stats p50 {lat['stats_p50']:.1f} ms p99 {lat['stats_p99']:.1f} ms, statuses {lat['statuses']}")
    shutil.rmtree(work, ignore_errors=True)
    peaks = [run["rss"] for run in rebuilds if run.get("rss")]
    rebuild = {**_median_run(rebuilds), "rss": max(peaks) if peaks else None}
    ratios = [_rate(b) / _rate(a) for a, b in zip(reads, rebuilds, strict=True)]
    return Checkpoint(int(reads[0]["events"]), inputs, write_rate, _median_run(reads), rebuild, lat, ratios)


# --- writing the log ----------------------------------------------------------------------------------------------


def build_and_measure(started: Started, events: int, tmp: Path, seed: int, repeat: int) -> list[Checkpoint]:
    from engine.log import Log
    from engine.received import Received
    from ops.bench.events import generate

    customers = max(10_000, events // 50)
    say(f"-- generating {events:,} events over {customers:,} customers (seed {seed}) ...")
    t0 = time.perf_counter()
    lines = generate(events, seed=seed, customers=customers).lines
    say(f"   {time.perf_counter() - t0:.1f} s, {sum(len(line) for line in lines) / MIB:.0f} MiB")
    data = tmp / "data"
    log = Log(data / "log.sqlite")
    marks = sorted({m for m in (CHECKPOINT, events) if m <= events})
    results: list[Checkpoint] = []
    writing = 0.0
    try:
        done = 0
        for mark in marks:
            say(f"-- writing inputs {done + 1:,}..{mark:,} through Log.commit, {BATCH:,} a batch ...")
            while done < mark:
                stop = min(done + BATCH, mark)
                now = datetime.now(UTC)
                batch = [Received(raw, "http", now) for raw in lines[done:stop]]
                t0 = time.perf_counter()
                log.commit(batch)
                writing += time.perf_counter() - t0
                done = stop
            rate = done / writing
            say(f"   head {log.head.position:,}, {rate:,.0f} inputs/s")
            say(f"-- checkpoint at {done:,} inputs ...")
            results.append(checkpoint(started, data, tmp, done, rate, seed, repeat))
    finally:
        log.close()
    return results


# --- the report ------------------------------------------------------------------------------------------------------


def table(results: list[Checkpoint]) -> str:
    head = ["events", "write ev/s", "read ceiling ev/s", "rebuild ev/s", "% of ceiling", "rebuild peak RSS MiB",
            "GET /customers p50/p99 ms", "GET /stats p50/p99 ms", "engine RSS MiB"]
    rows = [head]
    for c in results:
        rows.append([
            f"{c.events:,}", f"{c.write_rate:,.0f}", f"{_rate(c.read):,.0f}", f"{_rate(c.rebuild):,.0f}",
            f"{c.percent:.0f} %",
            f"{c.rebuild['rss'] / MIB:.0f}" if c.rebuild.get("rss") else "-",
            f"{c.latency['customers_p50']:.1f} / {c.latency['customers_p99']:.1f}",
            f"{c.latency['stats_p50']:.1f} / {c.latency['stats_p99']:.1f}",
            f"{c.latency['rss'] / MIB:.0f}" if c.latency.get("rss") else "-",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = ["| " + " | ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    out.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.rebuild", description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="inputs written to the log (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="at most 100,000 events, for a smoke run")
    parser.add_argument("--seed", type=int, default=None, help="the workload's seed (default: events.SEED)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of (a) and (b), alternately, at each checkpoint; medians are shown (default 1)")
    parser.add_argument("--tmp", type=Path, help="where the temporary directory goes (default: the system's)")
    parser.add_argument("--role", choices=("read", "rebuild"), help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--into", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.role == "read":
        read_role(args.log, args.report)
        return 0
    if args.role == "rebuild":
        rebuild_role(args.log, args.into, args.report)
        return 0

    from ops.bench.events import SEED

    seed = SEED if args.seed is None else args.seed
    events = min(args.events, CHECKPOINT) if args.quick else args.events
    info: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                            "inputs": events, "seed": seed, "repeat": args.repeat}
    say("machine: " + ", ".join(f"{k} {v}" for k, v in info["machine"].items()))
    started = Started()
    tmp = Path(tempfile.mkdtemp(prefix="engage-bench-rebuild-", dir=args.tmp))
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        results = build_and_measure(started, events, tmp, seed, args.repeat)
    finally:
        started.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)

    if args.json:
        print(json.dumps({**info, "checkpoints": [{**c.__dict__, "percent_of_ceiling": c.percent} for c in results]},
                         indent=2))
        return 0
    print(f"Rebuild benchmark, {info['date']}: {events:,} inputs written, seed {seed}; "
          "events = records in the log" + (f"; medians of {args.repeat} alternating runs" if args.repeat > 1 else ""))
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info["machine"].items()))
    print()
    print(table(results))
    print()
    for c in results:
        if len(c.ratios) > 1:
            print(f"- at {c.events:,} events, rebuild / the ceiling just before it, run by run: "
                  + ", ".join(f"{100 * r:.0f} %" for r in c.ratios))
        print(f"- at {c.events:,} events: read {c.read['bytes'] / MIB:.0f} MiB of records; rebuild spent "
              f"{c.rebuild['respan_seconds']:.2f} s of {c.rebuild['seconds']:.2f} s in the final respan; "
              f"read ceiling process peak RSS {c.read['rss'] / MIB:.0f} MiB; {c.latency['profiles']:,} profiles; "
              f"GET /health p50 {c.latency['health_p50']:.1f} ms on fresh connections, "
              f"{c.latency['keepalive_health_p50']:.1f} ms on one kept-alive connection; "
              f"HTTP statuses {c.latency['statuses']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted: stopped what this bench started and removed its temporary directory")
        sys.exit(130)
