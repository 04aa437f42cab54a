"""`engage demo` against a real engine: the dashboard's numbers move, every scenario shows."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.integration.engine_process import ENGAGE, EngineProcess, engage


def settled(eng: EngineProcess, timeout: float = 90) -> dict[str, object]:
    """/stats once the log stops growing and the projection has caught up."""
    deadline, last = time.time() + timeout, -1
    while time.time() < deadline:
        health = eng.get("/health").json()
        head = health["log"]["head"]
        if head == last and health["projections"]["read-models"]["lag"] == 0:
            return dict(eng.get("/stats").json())
        last = head
        time.sleep(0.5)
    raise AssertionError("the engine did not settle")


def test_demo_backfills_then_streams_live_events_that_move_every_panel(engine: EngineProcess) -> None:
    done = engage("demo", "--nats", engine.nats, "--history", "1500", "--rate", "150", "--duration", "4",
                  "--seed", "11", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "backfilled 1,500 events" in done.stdout and "published" in done.stdout
    stats = settled(engine)
    assert stats["events"] > 1500  # type: ignore[operator]
    engagement = stats["engagement"]
    assert isinstance(engagement, dict) and len([n for n in engagement.values() if n]) >= 4  # several rungs
    assert stats["sla"]["first_response_breached"] > 0  # type: ignore[index]
    rejected = stats["rejected"]
    assert isinstance(rejected, dict) and rejected.get("schema", 0) > 0
    live = [json.loads(line) for line in engage("export", "--data", str(engine.data)).stdout.splitlines()]
    now_ish = [r["event"] for r in live if r["event"]["id"].startswith("demo:")]
    assert now_ish and {e["type"] for e in now_ish} >= {"case.opened", "purchase.completed"}
    # live events are stamped with the current time, so the dashboard's "now" moves
    assert max(e["occurred_at"] for e in now_ish) > stats["as_of"][:10]  # type: ignore[index]


def live_demo(engine: EngineProcess) -> subprocess.Popen[str]:
    return subprocess.Popen([*ENGAGE, "demo", "--nats", engine.nats, "--history", "0", "--rate", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_head(engine: EngineProcess, proc: subprocess.Popen[str], position: int) -> None:
    """Until the demo's events reach `position` in the log, while the demo runs on."""
    deadline = time.time() + 30
    while engine.get("/health").json()["log"]["head"] < position:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)


def stopped_cleanly(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C: the demo ends with exit 0 and prints what it published."""
    proc.send_signal(2)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "published" in out and "Traceback" not in err


def test_demo_stops_cleanly_on_sigint(engine: EngineProcess) -> None:
    proc = live_demo(engine)
    try:
        wait_for_head(engine, proc, 20)
        stopped_cleanly(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_without_an_engine_says_what_to_do(tmp_path: Path) -> None:
    done = engage("demo", "--nats", "nats://127.0.0.1:1", "--duration", "1", timeout=60)
    assert done.returncode == 2
    assert "is `engage up` running there?" in done.stderr and "Traceback" not in done.stderr


def test_demo_waits_while_the_engine_is_down_and_carries_on(engine: EngineProcess) -> None:
    proc = live_demo(engine)
    lines: list[str] = []

    def wait_for_line(words: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        assert proc.stdout is not None
        while not any(words in line for line in lines):
            assert time.time() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())

    try:
        wait_for_head(engine, proc, 20)
        assert engine.stop() == 0
        wait_for_line("does not answer")
        before = int(json.loads(engage("export", "--data", str(engine.data)).stdout.splitlines()[-1])["position"])
        engine.start()
        wait_for_line("answers again")
        wait_for_head(engine, proc, before + 20)  # live events flow again
        stopped_cleanly(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
