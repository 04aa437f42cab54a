"""What an operator's accident does to a data directory, and what the engine makes of it: a log
restored from a backup under newer read models, a damaged read-model file, a log deleted while the
engine runs. Read models are derived data and are folded again; nothing is acknowledged that is
not in the log."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from tests.integration.engine_process import EngineProcess
from tests.samples import ev

FILES = ("log.sqlite", "log.sqlite-wal", "log.sqlite-shm")


def json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def run_once(data: Path, *raws: bytes) -> None:
    """An engine on `data` that takes these events, folds them and stops cleanly."""
    engine = EngineProcess(data).start()
    try:
        engine.send(*raws)
        engine.caught_up()
    finally:
        assert engine.stop() == 0


def votes(who: str, n: int = 3) -> list[bytes]:
    return [ev(f"{who}-{i}", "idea.voted", {"idea": "i"}, customer=f"{who}-{i}") for i in range(n)]


def test_a_log_restored_from_a_backup_gets_its_own_read_models(tmp_path: Path) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup"
    run_once(data, *votes("alice"))
    backup.mkdir()
    for name in FILES:
        if (data / name).exists():
            shutil.copy2(data / name, backup / name)
    run_once(data, *votes("bob"))
    for name in FILES:  # the backup, as it was: the read models stay as bob left them
        (data / name).unlink(missing_ok=True)
        if (backup / name).exists():
            shutil.copy2(backup / name, data / name)
    engine = EngineProcess(data).start()
    try:
        engine.send(*votes("carol"))
        health = engine.caught_up()
        assert health["position"] == engine.get("/health").json()["log"]["head"] == 6
        assert engine.get("/customers/carol-0").status_code == 200  # folded, not skipped
        assert engine.get("/customers/bob-0").json() == {"error": "not_found"}  # not in this log
        timeline = engine.get("/customers/alice-0/timeline").json()["items"]
        assert [item["id"] for item in timeline] == ["e-alice-0"]
        assert "were not folded from this log" in engine.log_tail(20_000)
    finally:
        assert engine.stop() == 0


def test_damaged_read_models_are_folded_again_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_once(data, *votes("dora"))
    (data / "read.sqlite").write_bytes(b"\x00garbage" * 4096)
    for suffix in ("-wal", "-shm"):
        Path(f"{data / 'read.sqlite'}{suffix}").unlink(missing_ok=True)
    engine = EngineProcess(data).start()
    try:
        engine.caught_up()
        assert engine.get("/customers/dora-2").status_code == 200
        assert "are damaged" in engine.log_tail(20_000)
    finally:
        assert engine.stop() == 0


def test_a_log_deleted_under_a_running_engine_commits_nothing_more(tmp_path: Path) -> None:
    """SQLite writes on through the deleted file's descriptor: those commits would be acknowledged
    and lost. The writer checks the file is still the log before each commit, and a writer started
    again never makes a new empty log in its place."""
    data = tmp_path / "data"
    engine = EngineProcess(data).start()
    try:
        engine.send(*votes("erin"))
        for name in FILES:
            (data / name).unlink(missing_ok=True)
        for _ in range(2):  # the failed writer, then the one that would have started again
            refused = httpx.post(engine.http + "/events", content=b"\n".join(votes("fred")),
                                 headers={"content-type": "application/x-ndjson"}, timeout=60)
            assert refused.status_code == 503, refused.text
        health = engine.get("/health").json()
        assert health["status"] == "degraded", health
        assert "deleted or replaced" in health["ingest"]["error"], health
        assert not (data / "log.sqlite").exists()  # no new log in its place
        # The writer's own report of it is a JSON line like the engine's (a log shipper reads one format).
        lines = [line for line in engine.log_tail(50_000).splitlines()  # but what `up` prints where it listens
                 if line.strip() and not line.startswith(("engage up:", "  "))]
        assert any("commit failed" in line for line in lines), lines
        assert [line for line in lines if not json_object(line)] == [], lines
    finally:
        engine.kill()


def test_read_models_removed_under_a_running_engine_are_reported(tmp_path: Path) -> None:
    """/health said ok, at position 0, while every read answered 500."""
    data = tmp_path / "data"
    engine = EngineProcess(data).start()
    try:
        engine.send(*votes("gail"))
        position = engine.caught_up()["position"]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{data / 'read.sqlite'}{suffix}").unlink(missing_ok=True)
        health = engine.get("/health").json()
        assert health["status"] == "degraded", health
        models = health["projections"]["read-models"]
        assert models["position"] == position and "cannot be read" in models["error"], health
        assert "restart the engine" in models["error"]
    finally:
        assert engine.stop() == 0
    engine = EngineProcess(data).start()  # and a restart folds them again
    try:
        engine.caught_up()
        assert engine.get("/customers/gail-1").status_code == 200
    finally:
        assert engine.stop() == 0
