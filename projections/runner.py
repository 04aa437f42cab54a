"""Follows the log into the read models: each page of records and the tracking position commit in
one transaction, so after a crash the runner carries on exactly where its last commit stopped.

The SQLite recorder has no push subscription: the runner polls the notification log.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from engine import logs
from engine.children import die_with_parent
from projections.projector import PAGE, Projector
from projections.store import answered, tracked

log = logging.getLogger("engage.projections")

ANCHOR_EVERY = 60.0  # seconds between moves of the counts' anchor while idle
# From how many records in the log a runner starting on empty read models folds in bulk (as
# `engage rebuild` does): `engage up` over a 980k-event log with no read models caught up in
# 15.4–19.0 s against 42.4–45.9 s live (23.5–24.0 s in bulk with the closing sweep unshared).
BULK_FROM = 10_000
# Ingest comes first: when the cores are busy, the engine's writer and consumer (producers wait on
# them, SPEC §2) run before the fold, and the read models catch up when the burst is over (their
# lag is in /health). Idle cores still go to the runner: niceness only orders who waits.
RUNNER_NICENESS = 10
# Records folded in one transaction while catching up on live read models, swept before it commits:
# readers then never see events whose profiles' spans are not swept yet (a page committed unswept
# let /stats count profiles its levels did not add up to, and ?level= list a profile of another
# level). Catching up 98k events in transactions of 50,000 took 6.5 s of CPU against 6.0 s with one
# sweep at the end (5,000 a transaction: 31 s; 20,000: 11.7 s): each sweep refolds what sorts
# before a profile's history. Memory: the records and their rows, ~30 MB.
CATCH_UP = 50_000


class Following(Protocol):
    """What /health and /metrics read of a projection runner (Runner, RunnerProcess)."""

    @property
    def position(self) -> int: ...  # up to where the read models answer in full

    @property
    def folded(self) -> int: ...  # up to where the fold has read the log (ahead during a bulk fold)

    @property
    def error(self) -> str | None: ...


def status_file(path: Path) -> Path:
    """Where a runner that cannot fold says why, beside its read models (`read.sqlite.error`):
    the engine that started it shows it in /health. It goes once a page folds again."""
    return path.with_name(path.name + ".error")


class Runner:
    """Keeps the read models up to date with the log, on a thread of its own."""

    def __init__(self, read_log: Callable[[int, int], list[bytes]], path: Path, *, poll: float = 0.1) -> None:
        self._read_log = read_log
        self._path = path
        self._poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.position = 0  # up to where the read models answer in full (store.ANSWERED)
        self.folded = 0  # up to where the fold has read the log
        self.error: str | None = None
        self._status = status_file(path)
        self._status.unlink(missing_ok=True)  # what a runner before this one said

    def _report(self, error: str | None) -> None:
        if error == self.error:
            return
        self.error = error
        if error is None:
            self._status.unlink(missing_ok=True)
        else:
            partial = self._status.with_name(self._status.name + ".partial")
            partial.write_text(error, encoding="utf-8")
            partial.replace(self._status)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="engage-projections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def run_here(self) -> None:
        """Follow the log on the calling thread until stop() (a process of its own runs this)."""
        self._run()

    def _open(self) -> Projector:
        """The projector; a bulk one when the read models are empty and the log holds BULK_FROM
        records or more (first start on a log, read models deleted or of another version)."""
        projector = Projector(self._path)
        try:
            far_behind = projector.position == 0 and bool(self._read_log(BULK_FROM - 1, 1))
        except (sqlite3.Error, RuntimeError):
            far_behind = False  # the loop reports what is wrong with the log, and retries
        if far_behind:
            projector.close()
            projector = Projector(self._path, bulk=True)
        return projector

    def _backlog(self, records: list[bytes]) -> list[bytes]:
        """`records` and, when they are a full page, the pages that follow, up to CATCH_UP records:
        one transaction's worth, swept before it commits."""
        while len(records) % PAGE == 0 and len(records) < CATCH_UP:
            more = self._read_log(self.folded + len(records), PAGE)
            if not more:
                break
            records += more
        return records

    def _answered(self, projector: Projector) -> None:
        """`position`: up to where the answers are whole (store.ANSWERED), `folded` the fold's."""
        self.position = 0 if projector.has_dirty() else self.folded

    def _run(self) -> None:
        projector = self._open()
        moved = time.monotonic()
        try:
            self.folded = projector.position
            self._answered(projector)
            while not self._stop.is_set():
                try:
                    records = self._read_log(self.folded, PAGE)
                    if records and projector.bulk and len(records) < PAGE:
                        # The end of a bulk fold: its sweep, shared with a helper process, builds
                        # the readers' indexes and ends the bulk mode.
                        projector.apply(records, respan=False)
                        self.folded = projector.apply([], respan=True)
                        self._answered(projector)
                        self._report(None)
                        moved = time.monotonic()
                        continue
                    if records:
                        if projector.bulk:  # a full page: more are waiting; answers are partial until the end
                            self.folded = projector.apply(records, respan=False)
                        else:
                            self.folded = projector.apply(self._backlog(records), respan=True)
                        self._answered(projector)
                        self._report(None)
                        moved = time.monotonic()
                        continue
                    if projector.has_dirty():  # caught up on a full page: sweep what it left
                        self.folded = projector.apply([], respan=True)
                        self._answered(projector)
                        moved = time.monotonic()
                    elif time.monotonic() - moved > ANCHOR_EVERY:  # idle: keep "now" cheap to count
                        projector.apply([], respan=False)
                        moved = time.monotonic()
                except (sqlite3.Error, RuntimeError, OSError) as e:
                    error = f"the read models are stuck at position {self.folded}: {e}"
                    if error != self.error:  # once, not every second
                        log.exception("projections: %s; retrying every second", error)
                    self._report(error)
                    self._stop.wait(1)
                    continue
                self._stop.wait(self._poll)
        finally:
            projector.close()


class RunnerProcess:
    """The runner in a process of its own, so folding never competes with ingest for the GIL.

    Same face as Runner: start(), stop(), position, error. Its position is read from the read
    model's tracking row (the runner commits it with the rows), and `poll()` restarts a runner
    that died."""

    def __init__(self, log_path: Path, path: Path) -> None:
        self._log_path = log_path
        self._path = path
        self._proc: subprocess.Popen[bytes] | None = None
        self._exited: str | None = None
        self._restarted_at = 0
        self._known = 0  # the last position read
        self._folded = 0  # the last tracking position read
        self._unreadable: str | None = None  # why the read models' file could not be read, the last time

    @property
    def error(self) -> str | None:
        """Why the read models do not follow the log, if they do not: what the runner reports
        (a page it cannot fold), else that it exited and was started again."""
        with contextlib.suppress(FileNotFoundError):
            return status_file(self._path).read_text(encoding="utf-8")
        position = self.position
        if self._unreadable is not None:  # deleted, emptied or damaged under the engine
            return (f"the read models in {self._path} cannot be read ({self._unreadable}): restart the engine, "
                    "which folds them again from the log")
        if self._exited is not None and position > self._restarted_at:
            self._exited = None  # the runner started again folds: nothing is wrong any more
        return self._exited

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "projections.runner", "--log", str(self._log_path), "--read", str(self._path)],
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(os.getpid()),
        )
        with contextlib.suppress(OSError):  # a platform without it runs the runner at our priority
            os.setpriority(os.PRIO_PROCESS, self._proc.pid, RUNNER_NICENESS)

    def poll(self) -> None:
        """Start the runner again if it died (it carries on from its tracking position)."""
        code = None if self._proc is None else self._proc.poll()
        if code is not None:
            self._exited = f"the projection runner exited with code {code}; started again"
            self._restarted_at = self.position
            log.error("projections: %s", self._exited)
            self.start()

    @property
    def position(self) -> int:
        """Up to where the read models answer in full (store.ANSWERED: the tracking position, 0
        while a bulk fold is not swept); the last one read while the file cannot be read (see
        `error`)."""
        if not self._path.exists():
            self._unreadable = "the file is gone"
            return self._known
        try:
            position = answered(self._path, timeout=5)
        except sqlite3.Error as e:
            if "locked" not in str(e):  # busy for a moment is not broken
                self._unreadable = str(e)
            return self._known
        self._unreadable = None
        self._known = position or 0
        return self._known

    @property
    def folded(self) -> int:
        """The tracking position: how far the fold has read the log. Ahead of `position` while a
        bulk fold is not swept yet (its progress); the last one read while the file cannot be."""
        with contextlib.suppress(sqlite3.Error):
            row = tracked(self._path, timeout=5)
            self._folded = row[0] if row else 0
        return max(self._folded, self._known)  # never behind the position last read

    def stop(self, timeout: float = 30) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # it finishes the page in hand: rows and position commit together
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    """`python -m projections.runner --log LOG --read READ`: what RunnerProcess starts."""
    import argparse

    from engine.log import Log

    parser = argparse.ArgumentParser(prog="python -m projections.runner")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--read", type=Path, required=True)
    args = parser.parse_args(argv)
    logs.configure(sys.stderr)  # as the engine's own lines: JSON Lines unless stderr is a terminal
    source = Log(args.log, create=False)
    runner = Runner(source.records, args.read)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner._stop.set())
    try:
        runner.run_here()
    finally:
        source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
