"""Long commands show a progress bar on a terminal (a pseudo-terminal here) and stay quiet in pipes."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.log import Log
from engine.received import Received
from ops.bench.events import generate
from tests.integration.engine_process import ENGAGE, engage


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("progress") / "data"
    data.mkdir()
    log = Log(data / "log.sqlite")
    try:
        now = datetime.now(UTC)
        workload = generate(3000, customers=100, seed=2)
        for start in range(0, len(workload), 1000):
            log.commit([Received(raw, "test", now) for raw in workload.lines[start:start + 1000]])
    finally:
        log.close()
    return data


def on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `engage ARGS` with stderr on a pseudo-terminal; its exit code and what the terminal showed."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, columns
    proc = subprocess.Popen([*ENGAGE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return proc.wait(60), shown.decode(errors="replace")


@pytest.mark.parametrize("command", ["export", "rebuild", "replay"])
def test_long_commands_draw_a_bar_with_the_total_on_a_terminal(data: Path, tmp_path: Path, command: str) -> None:
    head = Log(data / "log.sqlite", create=False)
    total = head.head.position
    head.close()
    args = {"export": ["export", "--data", str(data), "-o", str(tmp_path / "out.jsonl")],
            "rebuild": ["rebuild", "--data", str(data)],
            "replay": ["replay", "--data", str(data), "--to-position", str(total), "--into", str(tmp_path / "r")]}
    code, shown = on_a_terminal(*args[command])
    assert code == 0, shown
    assert command in shown and "%" in shown and f"/{total:,} records" in shown, shown[-500:]


def test_no_bar_in_a_pipe(data: Path, tmp_path: Path) -> None:
    done = engage("export", "--data", str(data), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 0 and "%" not in done.stderr and "\x1b[" not in done.stderr
    assert done.stderr.startswith("exported ")
