"""When a part of the engine stops: a projection runner that cannot fold a page says so in /health
(the engine's read models stood still while /health said "ok"), and stops saying so once it
folds again; a log that does not answer a commit gets POST /events a 504, not a wait for ever."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from engine.children import children_of
from tests.integration.engine_process import EngineProcess
from tests.samples import ev


def read_models(health: dict[str, Any]) -> dict[str, Any]:
    return {"status": health["status"], **health["projections"]["read-models"]}


def wait_for(eng: EngineProcess, ready: Any, timeout: float = 30) -> dict[str, Any]:
    return read_models(eng.health_when(lambda health: ready(read_models(health)), timeout))




def test_a_runner_stuck_on_a_page_is_degraded_health_until_it_folds_again(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "data").start()
    try:
        eng.send(ev(1, "idea.voted", {"idea": "i"}))
        eng.caught_up()
        with sqlite3.connect(tmp_path / "data" / "read.sqlite") as con:  # a page that cannot commit
            con.execute("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END")
        eng.send(ev(2, "idea.voted", {"idea": "j"}))
        stuck = wait_for(eng, lambda s: s["error"] is not None)
        assert stuck["status"] == "degraded" and stuck["position"] == 1 and stuck["lag"] == 1
        assert "stuck at position 1" in stuck["error"] and "refused" in stuck["error"]
        time.sleep(1.5)  # it keeps retrying, and keeps saying so
        assert read_models(eng.get("/health").json())["error"] == stuck["error"]
        with sqlite3.connect(tmp_path / "data" / "read.sqlite") as con:
            con.execute("DROP TRIGGER refuse")
        healed = wait_for(eng, lambda s: s["position"] == 2 and s["error"] is None)
        assert healed["status"] == "ok"
        assert eng.log_tail(20_000).count("stuck at position 1") == 1  # logged once, not every second
    finally:
        eng.kill()


def test_a_commit_the_log_does_not_answer_is_a_504_and_a_resend_is_safe(tmp_path: Path) -> None:
    """A stopped writer (a hung disk would look the same): POST /events answers 504 after the
    commit timeout instead of holding the request open for ever; once the writer goes on, what
    was sent is committed once, and sending it again is a duplicate."""
    eng = EngineProcess(tmp_path / "data", extra=["--commit-timeout", "2"]).start()
    try:
        assert eng.proc is not None
        (writer,) = children_of(eng.proc.pid, b"engine.writer")
        os.kill(writer, signal.SIGSTOP)
        try:
            late = ev("late", "idea.voted", {"idea": "i"})
            answer = httpx.post(eng.http + "/events", content=late, headers={"content-type": "application/json"},
                                timeout=30)
            assert answer.status_code == 504 and answer.json()["error"] == "timeout", answer.text
            assert "send the same request again" in answer.json()["detail"]
            health = eng.get("/health").json()  # the commit still waits: /health says so
            assert health["status"] == "degraded" and "has not answered a commit" in health["ingest"]["error"]
        finally:
            os.kill(writer, signal.SIGCONT)
        eng.wait_for_head(1)
        deadline = time.time() + 10  # the answer is read a moment after the head moves
        while eng.get("/health").json()["ingest"] != {"error": None}:
            assert time.time() < deadline
            time.sleep(0.05)
        again = httpx.post(eng.http + "/events", content=late, headers={"content-type": "application/json"})
        assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
        assert "did not answer within 2 s" in eng.log_tail(20_000)
    finally:
        eng.kill()
