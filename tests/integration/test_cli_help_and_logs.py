"""The CLI documents itself (examples, exit codes) and logs JSON Lines when not on a terminal."""
from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path

import pytest

from engine.logs import JsonFormatter
from ops.cli import COMMANDS
from tests.integration.engine_process import EngineProcess, engage


def test_engage_help_lists_every_command_and_documents_exit_codes() -> None:
    done = engage("--help")
    assert done.returncode == 0
    for command in COMMANDS:
        assert command in done.stdout
    assert "exit codes:" in done.stdout and "130" in done.stdout and "JSON" in done.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_a_description_and_examples(command: str) -> None:
    done = engage(command, "--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout and f"engage {command}" in done.stdout.split("examples:")[1]


def test_engine_logs_are_json_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data").start()
    try:
        assert engine.get("/health").status_code == 200
        # The HTTP server's own warning ("Invalid HTTP request received.") was a plain-text line.
        with socket.create_connection(("127.0.0.1", engine.http_port), timeout=10) as garbage:
            garbage.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            garbage.recv(1024)
    finally:
        engine.stop()
    lines = engine.log_tail(100_000).splitlines()
    announced = [line for line in lines if line.startswith(("engage up", "  nats", "  http"))]  # stdout
    assert len(announced) == 5, lines
    entries = [json.loads(line) for line in lines if line not in announced]  # every log line is JSON
    assert entries, engine.log_tail()
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
        assert entry["time"].endswith("Z") and entry["level"] in ("debug", "info", "warning", "error", "critical")
    assert any(e["logger"] == "engage.nats" and "TOUCHPOINTS" in e["message"] for e in entries)
    assert any("closed" in e["message"] for e in entries)  # logged while stopping, after the app started
    assert any(e["logger"].startswith("uvicorn") and "Invalid HTTP request" in e["message"] for e in entries)


def test_json_formatter_keeps_the_exception_and_extra_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("engage.test").makeRecord(
            "engage.test", logging.ERROR, __file__, 1, "failed %s", ("once",), sys.exc_info(),
            extra={"batch": 12})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed once" and entry["level"] == "error" and entry["batch"] == 12
    assert "ValueError: boom" in entry["exception"]
