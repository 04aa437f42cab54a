"""`engage up` as a real subprocess on free ports in a temporary directory, for integration tests."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ops.bench.ports import free_ports

ENGAGE = [sys.executable, "-m", "ops.cli"]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def engage(*args: str, timeout: float = 120, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would; text output."""
    return subprocess.run([*ENGAGE, *args], capture_output=True, timeout=timeout, text=True,
                          input=None if stdin is None else stdin.decode())


class PortTaken(RuntimeError):
    """`engage up` exited because a port it was given is in use."""


class EngineProcess:
    def __init__(self, data: Path, *, extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.data = data
        self.http_port, self.nats_port = free_ports(2)
        self.extra = extra or []
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = data.parent / f"{data.name}.out"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def nats(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def start(self, timeout: float = 30) -> EngineProcess:
        first = self.proc is None
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                # A port picked free was taken before the engine bound it (another test's client
                # got it as its ephemeral port). A first start may pick others; a restart keeps its
                # ports, which clients of the earlier run still use.
                if not first or attempt == 2:
                    raise
                self.http_port, self.nats_port = free_ports(2)
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> EngineProcess:
        cmd = [*ENGAGE, "up", "--data", str(self.data), "--listen", f"127.0.0.1:{self.http_port}",
               "--nats-port", str(self.nats_port), *self.extra]
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, **self.env})
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                if self.proc.returncode == 2 and " in use" in tail[-300:]:
                    raise PortTaken(tail)
                raise RuntimeError(f"engage up exited {self.proc.returncode}: {tail}")
            # with --nats URL the engine starts no server; --read-only serves HTTP only
            own_nats = "--nats" not in self.extra and "--read-only" not in self.extra
            if port_open(self.http_port) and (not own_nats or port_open(self.nats_port)):
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"engage up did not listen within {timeout} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        return self.output.read_text(errors="replace")[-chars:] if self.output.exists() else ""

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as a person would; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL to the whole group: the engine and the nats-server it started, as a crash would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        end = time.time() + 10
        while time.time() < end and (port_open(self.http_port) or port_open(self.nats_port)):
            time.sleep(0.1)

    def get(self, path: str, **params: str | int) -> httpx.Response:
        return httpx.get(self.http + path, params=params, timeout=30)

    def health_when(self, ready: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        """The first /health answer that `ready` accepts, polled; fails with the last one after `timeout`."""
        deadline = time.time() + timeout
        while True:
            health: dict[str, Any] = self.get("/health").json()
            if ready(health):
                return health
            assert time.time() < deadline, health
            time.sleep(0.05)

    def wait_for_head(self, position: int, timeout: float = 60) -> int:
        end = time.time() + timeout
        head = -1
        while time.time() < end:
            head = int(self.get("/health").json()["log"]["head"])
            if head >= position:
                return head
            time.sleep(0.1)
        raise AssertionError(f"log head {head} did not reach {position} within {timeout} s")

    def send(self, *raws: bytes) -> dict[str, Any]:
        """POST the events as NDJSON; the engine's answer (every one must be accepted)."""
        answer = httpx.post(self.http + "/events", content=b"\n".join(raws),
                            headers={"content-type": "application/x-ndjson"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["accepted"] == len(raws), answer.text
        return dict(answer.json())

    def caught_up(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until the read models hold the whole log, and have no error; their /health entry."""
        end = time.time() + timeout
        while True:
            health = self.get("/health").json()
            models = health["projections"]["read-models"]
            if models["position"] == health["log"]["head"] and models["error"] is None:
                return dict(models)
            assert time.time() < end, health
            time.sleep(0.05)
