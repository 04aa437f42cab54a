"""`engage rebuild` and `engage replay` (SPEC §8): replaying the whole log gives exactly the live
projections; a replay to an earlier point gives exactly what was live then, beside the log as it
stood then; a killed rebuild carries on to the same result. Real SQLite files, the CLI as a process."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import projections.projector
from engine.log import Log
from engine.received import Received
from ops.bench.events import generate
from ops.replay import rebuild
from projections.projector import Projector
from projections.runner import Runner
from projections.store import tracked
from tests.integration import test_projections
from tests.integration.engine_process import ENGAGE, EngineProcess, engage
from tests.samples import ev

ANCHOR = datetime(2026, 10, 1, tzinfo=UTC)  # the workload's events lie in the 60 days before it
FIRST_RECORDED = ANCHOR  # the clock of the first half's commits ...
SECOND_RECORDED = ANCHOR + timedelta(hours=1)  # ... and of the second half's



def dump(path: Path) -> dict[str, Any]:
    """Every read-model table, the events and the tracking position included."""
    out: dict[str, Any] = test_projections.dump(path)
    con = sqlite3.connect(path)
    try:
        out["events"] = con.execute("SELECT * FROM events ORDER BY position").fetchall()
        out["tracking"] = con.execute("SELECT * FROM tracking").fetchall()
        out["dirty"] = con.execute("SELECT * FROM dirty").fetchall()
    finally:
        con.close()
    return out


# The log's links in force are checked on their own below (test_a_replayed_log_holds_the_links_in_force).
LOG_TABLES = ("stored_events", "event_ids", "cases", "erased", "rejects", "keys")


def log_dump(path: Path, tables: tuple[str, ...] = LOG_TABLES) -> dict[str, list[Any]]:
    con = sqlite3.connect(path)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        con.close()


def as_replayed(dump: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """A log as a replay copies it: no key, and no digest of personal fields, which a later
    erasure could not reach in the copy (SPEC §6)."""
    scrubbed = [(i, digest if key_id is None else b"", p, key_id) for i, digest, p, key_id in dump["event_ids"]]
    return {**dump, "keys": [], "event_ids": sorted(scrubbed, key=repr)}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Live:
    """A log fed in batches with the runner following it, captured when the head was `middle`."""

    data: Path
    middle: int
    head: int
    read_at_middle: dict[str, Any]
    log_at_middle: dict[str, list[Any]]


def feed(log: Log, runner: Runner, lines: list[bytes], received_at: datetime, batch: int = 500) -> None:
    for start in range(0, len(lines), batch):
        log.commit([Received(raw, "test", received_at) for raw in lines[start:start + batch]])
        wait_for(runner, log.head.position)


def wait_for(runner: Runner, position: int, timeout: float = 60) -> None:
    end = time.time() + timeout
    while runner.position < position or runner.error is not None:
        assert time.time() < end, f"runner at {runner.position}, not {position}: {runner.error}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("live") / "data"
    workload = generate(6000, customers=400, anchor=ANCHOR)
    half = len(workload) // 2
    clock = Clock(FIRST_RECORDED)
    log = Log(data / "log.sqlite", clock=clock)
    runner = Runner(log.records, data / "read.sqlite", poll=0.01)
    runner.start()
    try:
        feed(log, runner, workload.lines[:half], FIRST_RECORDED)
        middle = log.head.position
        read_at_middle, log_at_middle = dump(data / "read.sqlite"), log_dump(data / "log.sqlite")
        clock.now = SECOND_RECORDED
        feed(log, runner, workload.lines[half:], SECOND_RECORDED)
        head = log.head.position
    finally:
        runner.stop()
        log.close()
    assert 0 < middle < head
    yield Live(data, middle, head, read_at_middle, log_at_middle)


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> str:
    output = f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, output
    assert r.returncode == 2, output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], output
    return lines[0]


def copy_data(source: Path, target: Path) -> Path:
    """The log (and read models, if any) of `source` in a directory of its own."""
    target.mkdir(parents=True)
    for name in ("log.sqlite", "read.sqlite"):
        if (source / name).exists():
            src, dst = sqlite3.connect(source / name), sqlite3.connect(target / name)
            src.backup(dst)
            src.close()
            dst.close()
    return target


# --- rebuild -----------------------------------------------------------------------------------------


def test_a_rebuild_equals_the_live_read_models(live: Live, tmp_path: Path) -> None:
    data = copy_data(live.data, tmp_path / "data")
    before = dump(data / "read.sqlite")
    r = ok(engage("rebuild", "--data", str(data)))
    assert f"position {live.head}" in r.stdout
    assert dump(data / "read.sqlite") == before
    assert sorted(p.name for p in data.iterdir()) == ["engage.lock", "log.sqlite", "read.sqlite"]


def test_a_rebuild_replaces_damaged_read_models(live: Live, tmp_path: Path) -> None:
    data = copy_data(live.data, tmp_path / "data")
    expected = dump(data / "read.sqlite")
    (data / "read.sqlite").write_bytes(b"not a database at all")
    (data / "read.sqlite-wal").write_bytes(b"stale")
    (data / "read.sqlite.error").write_text("the read models are stuck at position 3: malformed")  # a stuck runner's
    ok(engage("rebuild", "--data", str(data)))
    assert dump(data / "read.sqlite") == expected
    assert not (data / "read.sqlite-wal").exists() or (data / "read.sqlite-wal").stat().st_size == 0
    assert not (data / "read.sqlite.error").exists()  # about the file the rebuild replaced


def test_rebuild_is_refused_while_an_engine_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = EngineProcess(data).start()
    try:
        one_line_error(engage("rebuild", "--data", str(data)), "stop the engine", str(data))
    finally:
        assert engine.stop() == 0
    ok(engage("rebuild", "--data", str(data)))
    assert not (data / "read.sqlite.rebuild").exists()


def test_rebuild_without_a_log_is_one_line(tmp_path: Path) -> None:
    one_line_error(engage("rebuild", "--data", str(tmp_path / "nowhere")), "no log")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.slow
def test_a_rebuild_killed_midway_carries_on_to_the_same_read_models(tmp_path: Path) -> None:
    workload = generate(20_000, customers=2000, anchor=ANCHOR)
    data = tmp_path / "data"
    log = Log(data / "log.sqlite")
    for start in range(0, len(workload), 1000):
        log.commit([Received(raw, "test", ANCHOR) for raw in workload.lines[start:start + 1000]])
    head = log.head.position
    log.close()
    clean = copy_data(data, tmp_path / "clean")
    ok(engage("rebuild", "--data", str(clean)))

    partial = data / "read.sqlite.rebuild"
    proc = subprocess.Popen([*ENGAGE, "rebuild", "--data", str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        folded = poll(lambda: tracking(partial) > 0, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert folded, "the rebuild finished before it could be killed"
    assert partial.exists() and not (data / "read.sqlite").exists()
    killed_at = tracking(partial)
    assert 0 < killed_at <= head

    folding: list[int] = []
    assert rebuild(data, folding.append) == head
    assert folding[0] == killed_at  # carried on from the last commit, not from the start
    assert not partial.exists()
    assert dump(data / "read.sqlite") == dump(clean / "read.sqlite")


def tracking(path: Path) -> int:
    try:
        row = tracked(path, timeout=1)
    except sqlite3.Error:
        return 0  # the tables are not there yet
    return row[0] if row else 0


def poll(condition: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    """True once `condition` holds while `proc` still runs; False if it exited first."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_a_rebuild_resumed_between_out_of_order_links_gives_the_same_owners(tmp_path: Path) -> None:
    log = Log(tmp_path / "log.sqlite")
    log.commit([Received(raw, "test", ANCHOR) for raw in [
        ev(1, "identity.linked", {"channel": "twitter", "handle": "bob"}, customer="c-new",
           at="2026-09-10T00:00:00Z"),
        ev(2, "identity.linked", {"channel": "twitter", "handle": "bob"}, customer="c-old",
           at="2026-09-01T00:00:00Z"),  # older: c-new's link still wins (SPEC §3)
        ev(3, "comment.posted", {"thread": "t"}, identity={"channel": "twitter", "handle": "bob"}),
    ]])
    resumed = tmp_path / "resumed.sqlite"
    for after in range(3):  # reopened after each record, as after a kill
        projector = Projector(resumed)
        projector.apply(log.records(after, 1))
        projector.close()
    clean = Projector(tmp_path / "clean.sqlite")
    clean.apply(log.records(0, 10))
    clean.close()
    log.close()
    assert dump(resumed) == dump(tmp_path / "clean.sqlite")



def committed_log(path: Path, seed: int, n: int = 1500) -> Log:
    log = Log(path)
    workload = generate(n, customers=120, seed=seed, anchor=ANCHOR)
    for start in range(0, len(workload), 500):
        log.commit([Received(raw, "test", ANCHOR) for raw in workload.lines[start:start + 500]])
    return log


@pytest.mark.parametrize("kept", [1, 16_384])
def test_cases_kept_between_pages_give_what_one_pass_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            kept: int) -> None:
    monkeypatch.setattr(projections.projector, "CASES_KEPT", kept)  # 1: almost every case is read back from its row
    log = committed_log(tmp_path / "log.sqlite", seed=3)
    paged = Projector(tmp_path / "paged.sqlite")
    position = 0
    while records := log.records(position, 37):
        position = paged.apply(records)
    paged.close()
    monkeypatch.undo()
    whole = Projector(tmp_path / "whole.sqlite")
    whole.apply(log.records(0, 10_000))
    whole.close()
    log.close()
    cases = dump(tmp_path / "whole.sqlite")["cases"]
    assert len(cases) > 10 and {case[2] for case in cases} >= {"open", "solved", "closed"}
    assert dump(tmp_path / "paged.sqlite") == dump(tmp_path / "whole.sqlite")


def test_a_partial_rebuild_of_another_log_is_started_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    committed_log(data / "log.sqlite", seed=1).close()
    clean = copy_data(data, tmp_path / "clean")
    ok(engage("rebuild", "--data", str(clean)))
    other = committed_log(tmp_path / "other" / "log.sqlite", seed=2)  # same length, other events
    partial = Projector(data / "read.sqlite.rebuild")
    partial.apply(other.records(0, 700), respan=False)
    partial.close()
    other.close()

    folding: list[int] = []
    rebuild(data, folding.append)
    assert folding[0] == 0  # the partial's last record is not this log's: nothing of it is kept
    assert dump(data / "read.sqlite") == dump(clean / "read.sqlite")


def test_read_models_of_an_earlier_layout_are_folded_again(tmp_path: Path) -> None:
    log = committed_log(tmp_path / "log.sqlite", seed=3)
    old = sqlite3.connect(tmp_path / "read.sqlite")  # version 1: the record itself in every event row
    old.execute("CREATE TABLE tracking (name TEXT PRIMARY KEY, position INTEGER NOT NULL)")
    old.execute("INSERT INTO tracking VALUES ('read-models', 900)")
    old.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL, "
                "occurred_at TEXT NOT NULL, oid INTEGER NOT NULL, rung INTEGER, weight REAL, detail TEXT, "
                "record BLOB NOT NULL)")
    old.commit()
    old.close()
    projector = Projector(tmp_path / "read.sqlite")
    assert projector.position == 0  # dropped: the fold starts from the first record
    projector.apply(log.records(0, 10_000))
    projector.close()
    fresh = Projector(tmp_path / "fresh.sqlite")
    fresh.apply(log.records(0, 10_000))
    fresh.close()
    log.close()
    assert dump(tmp_path / "read.sqlite") == dump(tmp_path / "fresh.sqlite")


# --- replay --------------------------------------------------------------------------------------------


def test_a_replay_of_the_whole_log_equals_the_live_read_models(live: Live, tmp_path: Path) -> None:
    into = tmp_path / "replay"
    r = ok(engage("replay", "--data", str(live.data), "--to-position", str(live.head), "--into", str(into)))
    assert f"position {live.head}" in r.stdout and "--read-only" in r.stdout
    assert dump(into / "read.sqlite") == dump(live.data / "read.sqlite")
    replayed, source = log_dump(into / "log.sqlite"), log_dump(live.data / "log.sqlite")
    assert source["keys"] and any(key_id for *_, key_id in source["event_ids"])
    assert replayed == as_replayed(source)
    assert sorted(p.name for p in into.iterdir()) == ["REPLAY", "log.sqlite", "read.sqlite"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay"]  # nothing half-built left beside it


def test_a_replay_of_the_whole_log_keeps_the_rejects_received_after_its_last_event(tmp_path: Path) -> None:
    """Rejects that came after the last accepted event count in the live /stats: a replay of the
    whole log left them out (it kept those up to the last event's recording), so its `rejected`
    differed from the live one."""
    recorded = datetime.now(UTC) - timedelta(minutes=10)
    log = Log(tmp_path / "data" / "log.sqlite", clock=Clock(recorded))
    try:
        log.commit([Received(ev(k, "idea.voted", {"idea": "i"}), "test", recorded) for k in range(3)])
        later = recorded + timedelta(minutes=5)
        log.commit([Received(b"junk-" + bytes([48 + k]), "test", later) for k in range(2)])
    finally:
        log.close()
    into = tmp_path / "replay"
    ok(engage("replay", "--data", str(tmp_path / "data"), "--to-position", "3", "--into", str(into)))
    source, replayed = log_dump(tmp_path / "data" / "log.sqlite"), log_dump(into / "log.sqlite")
    assert len(source["rejects"]) == 2 and replayed["rejects"] == source["rejects"]


def test_a_replay_killed_midway_leaves_nothing_the_next_one_keeps(live: Live, tmp_path: Path) -> None:
    into = tmp_path / "replay"
    ongoing = tmp_path / f".replay.replay-{os.getpid()}-x"  # a replay still running (this process): kept
    ongoing.mkdir()
    killed = subprocess.Popen([*ENGAGE, "replay", "--data", str(live.data), "--to-position", str(live.head),
                               "--into", str(into)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(f".replay.replay-{killed.pid}-*")):  # it exists while the replay folds
            assert killed.poll() is None, "the replay ended before it could be killed midway"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.wait()
    assert list(tmp_path.glob(f".replay.replay-{killed.pid}-*")), "the killed replay left its build directory"
    ok(engage("replay", "--data", str(live.data), "--to-position", str(live.head), "--into", str(into)))
    assert dump(into / "read.sqlite") == dump(live.data / "read.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["replay", ongoing.name])


def test_a_replay_to_a_position_equals_what_was_live_at_that_position(live: Live, tmp_path: Path) -> None:
    into = tmp_path / "replay"
    ok(engage("replay", "--data", str(live.data), "--to-position", str(live.middle), "--into", str(into)))
    assert dump(into / "read.sqlite") == live.read_at_middle
    assert_log_as_it_stood(into / "log.sqlite", live)
    marker = json.loads((into / "REPLAY").read_text())
    assert marker["position"] == marker["to_position"] == live.middle and marker["to_time"] is None
    assert marker["source"] == str(live.data.absolute())
    assert marker["recorded_at"] == FIRST_RECORDED.isoformat().replace("+00:00", "Z")


def assert_log_as_it_stood(replayed: Path, live: Live) -> None:
    """The replay's log is the log at the middle, without its keys: a copy that kept them would
    keep a customer readable after a later erasure (SPEC §6)."""
    assert log_dump(replayed) == as_replayed(live.log_at_middle)


def test_a_replayed_log_holds_the_links_in_force(live: Live, tmp_path: Path) -> None:
    into = tmp_path / "replay"
    ok(engage("replay", "--data", str(live.data), "--to-position", str(live.head), "--into", str(into)))
    assert log_dump(into / "log.sqlite", ("links",)) == log_dump(live.data / "log.sqlite", ("links",))


def test_a_replay_to_a_time_takes_the_records_recorded_by_then(live: Live, tmp_path: Path) -> None:
    into = tmp_path / "replay"
    moment = (FIRST_RECORDED + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    r = ok(engage("replay", "--data", str(live.data), "--to-time", moment, "--into", str(into)))
    assert f"position {live.middle}" in r.stdout
    assert dump(into / "read.sqlite") == live.read_at_middle
    assert_log_as_it_stood(into / "log.sqlite", live)
    # The instant of a recording itself is included; an offset other than Z means the same instant.
    exact = tmp_path / "exact"
    ok(engage("replay", "--data", str(live.data), "--to-time", "2026-10-01T02:00:00+02:00", "--into", str(exact)))
    assert dump(exact / "read.sqlite") == live.read_at_middle


def test_a_replay_verifies_exports_and_is_served_read_only(live: Live, tmp_path: Path) -> None:
    into = tmp_path / "replay"
    ok(engage("replay", "--data", str(live.data), "--to-position", str(live.middle), "--into", str(into)))
    assert f"ok: {live.middle} records, chain intact" in ok(engage("verify", "--data", str(into))).stdout
    replayed = ok(engage("export", "--data", str(into))).stdout.splitlines()
    source = ok(engage("export", "--data", str(live.data))).stdout.splitlines()
    assert len(replayed) == live.middle and replayed == source[:live.middle]
    # `up` refuses to ingest into a replay; --read-only serves it as it stands.
    one_line_error(engage("up", "--data", str(into), "--listen", "127.0.0.1:0", "--nats-port", "0", timeout=30),
                   "--read-only")
    engine = EngineProcess(into, extra=["--read-only"]).start()
    try:
        health = engine.get("/health").json()
        assert health["log"]["head"] == live.middle
        assert health["projections"]["read-models"]["lag"] == 0
        stats = engine.get("/stats").json()
        rejects = [row[2] for row in live.log_at_middle["rejects"]]
        assert stats["events"] == live.middle
        assert stats["rejected"] == {reason: rejects.count(reason) for reason in set(rejects)}
    finally:
        assert engine.stop() == 0


def test_a_replay_refuses_a_directory_in_use(live: Live, tmp_path: Path) -> None:
    args = ("replay", "--data", str(live.data), "--to-position", "1", "--into")
    one_line_error(engage(*args, str(live.data)), "log.sqlite", "new or empty")
    held = tmp_path / "held"
    held.mkdir()
    (held / "read.sqlite").write_bytes(b"")
    one_line_error(engage(*args, str(held)), "read.sqlite")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    one_line_error(engage(*args, str(other)), "not empty")
    (tmp_path / "file").write_text("")
    one_line_error(engage(*args, str(tmp_path / "file")), "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "held", "other"]
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(engage(*args, str(empty)))  # an empty directory is fine
    assert (empty / "REPLAY").exists()


@pytest.mark.parametrize(("point", "words"), [
    (("--to-position", "0"), ("--to-position 0", "start at 1")),
    (("--to-position", "99999999"), ("99999999", "head")),
    (("--to-position", "ten"), ("--to-position", "ten")),
    (("--to-time", "yesterday"), ("--to-time", "RFC 3339")),
    (("--to-time", "2026-10-01T12:00:00"), ("--to-time", "offset")),
    (("--to-time", "2000-01-01T00:00:00Z"), ("before the first record",)),
    (("--to-time", "2026-10-01T00:00:00Z", "--to-position", "3"), ("--to-position", "--to-time")),
    ((), ("--to-position", "--to-time")),
])
def test_a_bad_point_is_one_line(live: Live, tmp_path: Path, point: tuple[str, ...], words: tuple[str, ...]) -> None:
    into = tmp_path / "replay"
    one_line_error(engage("replay", "--data", str(live.data), *point, "--into", str(into)), *words)
    assert list(tmp_path.iterdir()) == []


def test_replaying_an_empty_log_is_one_line(tmp_path: Path) -> None:
    Log(tmp_path / "data" / "log.sqlite").close()
    one_line_error(engage("replay", "--data", str(tmp_path / "data"), "--to-position", "1", "--into",
                          str(tmp_path / "replay")), "empty")


@pytest.mark.parametrize("command", ["rebuild", "replay", "history"])
def test_help_shows_examples_and_exit_codes(command: str) -> None:
    r = ok(engage(command, "--help"))
    assert r.stdout.startswith(f"usage: engage {command}")
    assert f"  engage {command} " in r.stdout and "exit codes" in r.stdout
    assert f"engage {command}" in ok(engage("--help")).stdout
