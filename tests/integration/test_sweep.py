"""A large span sweep shared with a helper process (projections/sweep.py) gives exactly the read
models of a sweep done in one process, and a helper that fails leaves its share to the runner."""
from __future__ import annotations

import os
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.log import Log
from engine.received import Received
from ops.bench.events import generate
from projections import sweep
from projections.projector import Projector
from tests.integration.test_replay import dump

ANCHOR = datetime(2026, 10, 1, tzinfo=UTC)


def written(path: Path, inputs: int, *, customers: int, seed: int) -> Path:
    """A log of a realistic workload, committed 500 inputs at a time."""
    log = Log(path)
    workload = generate(inputs, customers=customers, seed=seed, anchor=ANCHOR)
    for start in range(0, len(workload), 500):
        log.commit([Received(raw, "test", ANCHOR) for raw in workload.lines[start:start + 500]])
    log.close()
    return path


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return written(tmp_path_factory.mktemp("sweep") / "log.sqlite", 3000, customers=300, seed=11)


def rebuilt(log_path: Path, into: Path, *, bulk: bool) -> Path:
    log = Log(log_path, create=False)
    projector = Projector(into, bulk=bulk, clock=lambda: ANCHOR)
    try:
        while page := log.records(projector.position, 400):
            projector.apply(page, respan=False)
        projector.apply([], respan=True)
    finally:
        projector.close()
        log.close()
    return into


def helpers_left(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sweep-*"))


@pytest.mark.parametrize("bulk", [False, True])
def test_a_shared_sweep_gives_the_same_read_models(log_path: Path, tmp_path: Path, bulk: bool,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    alone = rebuilt(log_path, tmp_path / "alone.sqlite", bulk=bulk)
    monkeypatch.setattr(sweep, "SHARED_FROM", 10)
    shared = rebuilt(log_path, tmp_path / "shared.sqlite", bulk=bulk)
    assert len(dump(shared)["profiles"]) > 100  # the helper had a share to sweep
    assert dump(shared) == dump(alone)
    assert "sweep helper" not in caplog.text  # its share came from the helper
    assert helpers_left(tmp_path) == []


def test_a_shared_sweep_of_profiles_with_later_events_respans_them_from_their_resume(
        log_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A runner that stopped halfway and catches up: most profiles' new events sort after what it
    swept, and the helper's share of them comes back as tails, spliced like the runner's own."""
    alone = rebuilt(log_path, tmp_path / "alone.sqlite", bulk=False)
    monkeypatch.setattr(sweep, "SHARED_FROM", 10)
    log = Log(log_path, create=False)
    projector = Projector(tmp_path / "twice.sqlite", clock=lambda: ANCHOR)
    try:
        projector.apply(log.records(0, 1500), respan=True)
        while page := log.records(projector.position, 400):
            projector.apply(page, respan=False)
        con = sqlite3.connect(tmp_path / "twice.sqlite")
        tails = con.execute("SELECT count(*) FROM dirty d JOIN span_state s ON s.profile = d.profile "
                            "WHERE s.last < d.since").fetchone()[0]
        con.close()
        assert tails > 50, tails  # the sweep below has tails to share
        projector.apply([], respan=True)
    finally:
        projector.close()
        log.close()
    assert dump(tmp_path / "twice.sqlite") == dump(alone)
    assert "sweep helper" not in caplog.text  # its share came from the helper
    assert helpers_left(tmp_path) == []


def test_a_helper_that_fails_leaves_its_share_to_the_runner(log_path: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    alone = rebuilt(log_path, tmp_path / "alone.sqlite", bulk=True)
    monkeypatch.setattr(sweep, "SHARED_FROM", 10)
    monkeypatch.setenv(sweep.FAULT_ENV, "exit")
    shared = rebuilt(log_path, tmp_path / "shared.sqlite", bulk=True)
    assert "the sweep helper exited with code 3" in caplog.text
    assert dump(shared) == dump(alone)
    assert helpers_left(tmp_path) == []


def test_rows_left_by_a_killed_runner_go_when_the_next_helper_starts(log_path: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    finished = subprocess.Popen(["true"])  # a pid that no longer runs
    finished.wait()
    stale = tmp_path / f"shared.sqlite.sweep-{finished.pid}"
    stale.write_bytes(b"rows of a sweep nobody finished")
    live = tmp_path / f"shared.sqlite.sweep-{os.getppid()}"  # a runner still sweeping: left alone
    live.write_bytes(b"")
    monkeypatch.setattr(sweep, "SHARED_FROM", 10)
    rebuilt(log_path, tmp_path / "shared.sqlite", bulk=True)
    assert not stale.exists()
    assert live.exists()
