"""engine.children.alive: a running process is alive; one that ended is not, reaped or not."""
from __future__ import annotations

import subprocess
import sys
import time

from engine.children import alive


def test_a_process_is_alive_while_it_runs_and_not_once_it_ended_even_unreaped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert alive(proc.pid)
        assert proc.stdin is not None
        proc.stdin.close()  # it ends; nobody reaps it yet, so it stays a zombie
        deadline = time.monotonic() + 10
        while alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(proc.pid)
        assert proc.poll() == 0  # it was a zombie until now: ended, not reaped
        assert not alive(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
