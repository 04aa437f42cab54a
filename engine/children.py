"""The engine's child processes (nats-server, the log's writer and reader, the projection runner
and its sweep helper): each dies with the process that started it, and a pid can be asked after."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> Callable[[], None] | None:
    """The child's pre-exec hook: SIGTERM when the parent dies, even by SIGKILL (Linux only).

    PR_SET_PDEATHSIG is per thread: the child is signalled when the thread that started it ends,
    so start children from the main thread."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return hook


def alive(pid: int) -> bool:
    """Whether a process with this id runs (someone else's counts too). A zombie does not: it has
    ended and only waits to be reaped, by a parent that may never do it (PID 1 in a container)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it ended just now; or there is no /proc (not Linux), and os.kill said it runs
        return not Path("/proc").is_dir()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # the state follows the command name's ")"


def children_of(parent: int, marker: bytes) -> list[int]:
    """The live children of `parent` whose command line contains `marker` (Linux: /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("PPid:"))
            if ppid == parent and marker in (status.parent / "cmdline").read_bytes():
                found.append(int(status.parent.name))
        except (OSError, ValueError, StopIteration):
            continue
    return found
