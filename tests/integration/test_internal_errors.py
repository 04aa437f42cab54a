"""A defect answers 500 in the documented error shape and leaves its traceback in the engine's log
(it answered the framework's own body and logged nothing)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.integration.engine_process import EngineProcess
from tests.samples import ev


def test_a_failing_read_answers_500_in_the_error_shape_and_is_logged(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "data").start()
    try:
        eng.send(ev(1, "idea.voted", {"idea": "i"}))
        eng.caught_up()  # the runner has its tables: it will not make them again
        with sqlite3.connect(tmp_path / "data" / "read.sqlite") as con:  # a damaged read model
            con.execute("ALTER TABLE profiles RENAME TO profiles_elsewhere")
        answer = eng.get("/customers", level="advocate")
        assert answer.status_code == 500
        assert answer.json() == {"error": "internal",
                                 "detail": "the engine could not answer this request; its log has the details"}
        logged = eng.log_tail(20_000)
        assert "GET /customers failed" in logged and "Traceback" in logged and "no such table: profiles" in logged
    finally:
        eng.kill()
