"""The nats-server the engine owns: free ports, JetStream fsync, clear errors, no leftovers."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import engine.natsserver
from engine.children import alive
from engine.natsserver import NatsServer, NatsServerError


def wait_dead(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_port_zero_picks_a_free_port_and_reports_it(nats_server: NatsServer) -> None:
    assert nats_server.port != 0
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    with socket.create_connection(("127.0.0.1", nats_server.port), timeout=2) as sock:
        assert sock.recv(4096).startswith(b"INFO ")


def test_jetstream_is_on_and_fsyncs_every_write(nats_server: NatsServer) -> None:
    assert nats_server.monitor_url is not None
    with urllib.request.urlopen(f"{nats_server.monitor_url}/varz", timeout=5) as answer:
        varz = json.load(answer)
    assert varz["jetstream"]["config"]["sync_always"] is True
    assert varz["jetstream"]["config"]["store_dir"] == str(nats_server.jetstream_dir)
    assert varz["max_payload"] == 1024 * 1024
    assert "sync_interval: always" in nats_server.config_path.read_text()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = NatsServer(tmp_path / "nats", port=port)
        with pytest.raises(NatsServerError, match=f"127.0.0.1:{port} is already in use"):
            server.start()
    assert server.pid is None


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.natsserver, "find_binary", lambda: None)
    with pytest.raises(NatsServerError, match="nats-server not found"):
        NatsServer(tmp_path / "nats", port=0).start()


def test_unwritable_store_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NatsServerError, match="cannot write the NATS store directory"):
        NatsServer(tmp_path / "a-file" / "nats", port=0).start()


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", port=0)
    server.start()
    pid = server.pid
    assert pid is not None and alive(pid)
    server.stop()
    assert not alive(pid)
    assert server.pid is None


def test_a_data_directory_named_in_any_script_and_with_spaces_works(tmp_path: Path) -> None:
    """The config holds the store's path as a quoted string; nats-server reads no \\u escapes."""
    server = NatsServer(tmp_path / "données clients 客户" / "nats", port=0)
    server.start()
    try:
        assert server.port > 0 and (tmp_path / "données clients 客户" / "nats").is_dir()
    finally:
        server.stop()


def test_stale_pid_file_of_a_killed_server_is_handled(nats_server: NatsServer) -> None:
    killed = nats_server.pid
    nats_server.kill()
    assert nats_server.pid_path.read_text().strip() == str(killed)
    nats_server.start()
    assert nats_server.pid != killed
    assert nats_server.pid_path.read_text().strip() == str(nats_server.pid)


def test_restart_keeps_the_chosen_port(nats_server: NatsServer) -> None:
    port = nats_server.port
    nats_server.kill()
    nats_server.start()
    assert nats_server.port == port


def test_a_server_left_running_on_our_config_is_stopped_first(tmp_path: Path) -> None:
    orphan = NatsServer(tmp_path / "nats", port=0)
    orphan.start()
    orphan_pid = orphan.pid
    assert orphan_pid is not None
    successor = NatsServer(tmp_path / "nats", port=0)
    try:
        successor.start()
        assert not alive(orphan_pid)
        assert successor.pid != orphan_pid
    finally:
        successor.stop()
        orphan.stop()


def test_server_dies_with_the_engine(tmp_path: Path) -> None:
    engine_process = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from pathlib import Path\n"
            "from engine.natsserver import NatsServer\n"
            "s = NatsServer(Path(sys.argv[1]), port=0)\n"
            "s.start()\n"
            "print(s.pid, flush=True)\n"
            "time.sleep(60)\n"
        ), str(tmp_path / "nats")],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert engine_process.stdout is not None
        pid = int(engine_process.stdout.readline())
        assert alive(pid)
        engine_process.send_signal(signal.SIGKILL)
        engine_process.wait()
        assert wait_dead(pid), "nats-server outlived the engine"
    finally:
        engine_process.kill()
        engine_process.wait()
        if "pid" in locals() and alive(pid):
            os.kill(pid, signal.SIGKILL)
