"""One engine per data directory: a second `engage up` on the same log would be a second writer.

`engage up` and `engage rebuild` hold the lock exclusively. `engage up --read-only` holds it
shared: several read-only servers may serve one directory, and none of them sees its read models
replaced under it by a rebuild, nor a writer start beside it."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.settings import UsageError


class DataBusy(UsageError):
    """Another process holds the directory's lock (an engine, a read-only server or a rebuild)."""


class DataLock:
    def __init__(self, data: Path, *, shared: bool = False) -> None:
        self.path = data / "engage.lock"
        self.shared = shared
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
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataBusy(
                f"another engage process (an engine, or a rebuild) is using {self.path.parent}: stop it or wait for "
                "it, or choose another --data"
            ) from None
        if not self.shared:  # the writer's pid, for whoever looks; shared holders leave the file alone
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _owners_only(self.path.parent)
        self._fd = fd

    @property
    def fd(self) -> int:
        """The locked descriptor: a child that inherits it holds the lock until it exits too."""
        assert self._fd is not None, "acquire() first"
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock; a crash releases it too
            self._fd = None


def _owners_only(data: Path) -> None:
    """The directory holds the keys to every personal field: its owner's alone. What engage creates
    is (umask 077); one made before, by hand or by a deployment tool, is tightened. Silently: a
    mistake that stops the command next must stay one line."""
    st = data.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        os.chmod(data, st.st_mode & 0o700)
