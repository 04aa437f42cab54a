"""One engine per data directory: a second `engage up` on the same log would be a second writer."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.settings import UsageError


class DataLock:
    def __init__(self, data: Path) -> None:
        self.path = data / "engage.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise UsageError(f"--data {self.path.parent} is a file, not a directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UsageError(f"cannot use the data directory {self.path.parent}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                f"another engine is running on {self.path.parent}: stop it, or choose another --data"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock; a crash releases it too
            self._fd = None
