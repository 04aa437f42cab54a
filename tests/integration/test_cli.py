"""`engage` as a person runs it: a mistake gets one line saying what to do and exit code 2, never a
traceback; the good paths do what `--help` and the README say (SPEC §8, §9)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.log import EVENTS_TABLE, Log
from engine.natsserver import NatsServer, find_binary
from engine.received import Received
from ops.bench.ports import free_port
from tests.integration.engine_process import ENGAGE, EngineProcess, port_open
from tests.samples import ev

COMMANDS = ("up", "emit", "verify", "export", "rebuild", "replay", "history")


def cli(*args: str, cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess, in `cwd`, with no ENGAGE_* variable but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    return subprocess.run([*ENGAGE, *args], cwd=cwd, capture_output=True, timeout=timeout, text=True,
                          env={**clean, **(env or {})}, input=None if stdin is None else stdin.decode())


def one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2 and exactly one line on stderr, containing `words`: a usage error, not a crash."""
    output = f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, output
    assert r.returncode == 2, output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], output
    return lines[0]


def counts(stdout: str) -> dict[str, int]:
    """`engage emit`'s table, one `name  count` per line; outcomes that did not occur left out."""
    found: dict[str, int] = {}
    for line in stdout.splitlines():
        name, _, n = line.rstrip().rpartition("  ")
        if int(n):
            found[name.strip()] = int(n)
    return found


def ndjson(*events: bytes) -> bytes:
    return b"".join(e + b"\n" for e in events)


# --- mistakes: one line, exit 2 ------------------------------------------------------------------

UP = ("up", "--data", "{tmp}/data")

USAGE_ERRORS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("unknown flag of a command", (*UP, "--bogus"), ("--bogus",)),
    ("unknown flag before the command", ("--bogus", "up"), ("--bogus",)),
    ("unknown flag alone", ("--bogus",), ("--bogus",)),
    ("no command", (), ("COMMAND",)),
    ("unknown command", ("start",), ("start",)),
    ("listen without a port", (*UP, "--listen", "nonsense", "--nats-port", "0"), ("--listen", "HOST:PORT")),
    ("listen port out of range", (*UP, "--listen", "127.0.0.1:99999", "--nats-port", "0"), ("--listen", "99999")),
    ("listen port not a number", (*UP, "--listen", "127.0.0.1:http", "--nats-port", "0"), ("--listen", "http")),
    ("listen on every interface", (*UP, "--listen", "0.0.0.0:0", "--nats-port", "0"), ("0.0.0.0", "loopback")),
    ("nats port not a number", (*UP, "--listen", "127.0.0.1:0", "--nats-port", "abc"), ("--nats-port", "abc")),
    ("nats port out of range", (*UP, "--listen", "127.0.0.1:0", "--nats-port", "65536"), ("--nats-port", "65536")),
    ("nats not a URL", (*UP, "--listen", "127.0.0.1:0", "--nats", "notaurl"), ("--nats", "notaurl", "nats://")),
    ("nats URL of another scheme", (*UP, "--listen", "127.0.0.1:0", "--nats", "http://u:secret@h:1"),
     ("--nats", "http://u:***@h:1")),
    ("emit to a NATS that is no URL", ("emit", "events.ndjson", "--nats", "localhost"), ("--nats", "nats://")),
    ("verify a missing export", ("verify", "missing.jsonl"), ("missing.jsonl",)),
    ("verify an export and --data", ("verify", "log.jsonl", "--data", "{tmp}/data"), ("--data",)),
    ("verify a directory without a log", ("verify", "--data", "{tmp}/empty"), ("{tmp}/empty", "no log")),
    ("verify the default directory without a log", ("verify",), ("engage-data", "no log")),
    ("export a directory without a log", ("export", "--data", "{tmp}/empty"), ("{tmp}/empty", "no log")),
    ("export a directory that does not exist", ("export", "--data", "{tmp}/nowhere"), ("{tmp}/nowhere", "no log")),
    ("emit a missing file", ("emit", "missing.ndjson", "--http", "http://127.0.0.1:9"), ("missing.ndjson",)),
    ("emit without a destination", ("emit", "events.ndjson"), ("--http", "--nats")),
    ("emit to both", ("emit", "events.ndjson", "--http", "http://x", "--nats", "nats://x"), ("--http", "--nats")),
    ("emit outside touchpoints.>", ("emit", "events.ndjson", "--nats", "nats://127.0.0.1:9", "--subject", "events"),
     ("--subject", "touchpoints.")),
]


@pytest.mark.parametrize(("args", "words"), [(a, w) for _, a, w in USAGE_ERRORS], ids=[n for n, _, _ in USAGE_ERRORS])
def test_usage_mistake_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "events.ndjson").write_bytes(ndjson(ev(1, "idea.voted", {"idea": "i"})))
    (tmp_path / "log.jsonl").write_bytes(b"")
    r = cli(*(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    one_line_error(r, *(w.format(tmp=tmp_path) for w in words))
    assert r.stdout == ""
    # A mistake leaves nothing behind: no data directory made, no log created where none was.
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "nowhere").exists()
    assert list((tmp_path / "empty").iterdir()) == []


ENV_ERRORS: list[tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]] = [
    ({"ENGAGE_LISTEN": "nonsense"}, UP, ("ENGAGE_LISTEN (--listen)", "nonsense")),
    ({"ENGAGE_LISTEN": "0.0.0.0:0"}, UP, ("ENGAGE_LISTEN (--listen)", "loopback")),
    ({"ENGAGE_NATS_PORT": "abc"}, UP, ("ENGAGE_NATS_PORT (--nats-port)", "abc")),
    ({"ENGAGE_NATS": "localhost"}, UP, ("ENGAGE_NATS (--nats)", "nats://")),
    ({"ENGAGE_NATS": "localhost"}, ("demo",), ("ENGAGE_NATS (--nats)", "nats://")),
]


@pytest.mark.parametrize(("env", "args", "words"), ENV_ERRORS, ids=[" ".join(e) for e, _, _ in ENV_ERRORS])
def test_a_mistake_in_an_environment_variable_names_the_variable(
        tmp_path: Path, env: dict[str, str], args: tuple[str, ...], words: tuple[str, ...]) -> None:
    """The user set the variable, not the flag: the error says which (the flag stays named too)."""
    one_line_error(cli(*(a.format(tmp=tmp_path) for a in args), cwd=tmp_path, env=env), *words)
    flag = words[0].split("(")[1].rstrip(")")
    value = next(iter(env.values()))
    given = cli(*(a.format(tmp=tmp_path) for a in args), flag, value, cwd=tmp_path, env=env)
    assert "ENGAGE_" not in one_line_error(given, flag)  # a flag given outranks the variable and is named


def test_the_data_directory_and_its_files_are_the_owners_alone(engine: EngineProcess) -> None:
    """It holds the keys to every personal field (SPEC §6): no other local user may read it."""
    assert engine.data.stat().st_mode & 0o777 == 0o700
    for path in engine.data.rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path


def test_usage_mistake_from_the_environment_is_one_line(tmp_path: Path) -> None:
    r = cli("up", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0", cwd=tmp_path,
            env={"ENGAGE_NATS_PORT": "abc"})
    one_line_error(r, "abc")


def test_http_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("up", "--data", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}", "--nats-port", "0",
                cwd=tmp_path)
    one_line_error(r, f"127.0.0.1:{port}", "in use", "--listen")
    assert not (tmp_path / "data").exists()  # refused before anything was written


def test_nats_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http = free_port()
        r = cli("up", "--data", str(tmp_path / "data"), "--listen", f"127.0.0.1:{http}", "--nats-port", str(port),
                cwd=tmp_path)
    one_line_error(r, "NATS", str(port), "in use", "--nats-port")
    assert not port_open(http), "the HTTP port is left open after a failed start"
    assert not (tmp_path / "data").exists()  # refused before anything was written


@pytest.mark.parametrize("where", ["a regular file", "a path under a regular file"])
def test_unusable_data_directory(tmp_path: Path, where: str) -> None:
    """(A log that is not SQLite is the file's fault, exit 1: test_audit_tools_refuse_a_log_that_is_not_sqlite.)"""
    regular = tmp_path / "file"
    regular.write_text("not a directory\n")
    data = regular if where == "a regular file" else regular / "data"
    r = cli("up", "--data", str(data), "--listen", "127.0.0.1:0", "--nats-port", "0", cwd=tmp_path)
    one_line_error(r, str(data))


def test_a_log_that_cannot_be_written_is_refused_at_start(tmp_path: Path) -> None:
    """Not at the first commit (every POST answered 503): an immutable file (chattr +i) is what
    even root cannot write, as a read-only mount would be."""
    data = tmp_path / "data"
    data.mkdir()
    Log(data / "log.sqlite").close()
    subprocess.run(["chattr", "+i", str(data / "log.sqlite")], check=True)
    try:
        r = cli("up", "--data", str(data), "--listen", "127.0.0.1:0", "--nats-port", "0", cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(data / "log.sqlite")], check=True)
    one_line_error(r, "cannot write the log", str(data / "log.sqlite"))


def test_audit_tools_refuse_a_log_that_is_not_sqlite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "log.sqlite").write_bytes(b"this is not an SQLite database\n" * 100)
    # Not the user's mistake (exit 2) but the thing checked that is not right (exit 1), in one line.
    verified = cli("verify", "--data", str(data), cwd=tmp_path)
    assert verified.returncode == 1 and verified.stderr == "", verified.stdout + verified.stderr
    assert verified.stdout.startswith("broken at position 1:") and "file is not a database" in verified.stdout
    exported = cli("export", "--data", str(data), cwd=tmp_path)
    assert exported.returncode == 1 and exported.stdout == "", exported.stdout + exported.stderr
    assert len(exported.stderr.splitlines()) == 1 and str(data) in exported.stderr
    # `up` alike (found by a probe: it said so with exit 2, a user's mistake)
    started = cli("up", "--data", str(data), "--listen", "127.0.0.1:0", "--nats-port", "0", cwd=tmp_path)
    assert started.returncode == 1 and "Traceback" not in started.stderr, started.stdout + started.stderr
    assert [line for line in started.stderr.splitlines() if line.strip()] == [
        f"engage up: the log at {data / 'log.sqlite'} is damaged (file is not a database): restore it from a backup"]


def test_a_log_missing_a_record_stops_rebuild_and_replay_with_exit_1(tmp_path: Path) -> None:
    """A row gone from the log file is the file's fault, not the user's: exit 1, one line that
    says to verify (found by a probe: exit 2)."""
    data = tmp_path / "data"
    log = Log(data / "log.sqlite")
    log.commit([Received(ev(n, "idea.voted", {"idea": "i"}), "http", datetime.now(UTC)) for n in range(50)])
    log.close()
    with sqlite3.connect(data / "log.sqlite") as con:
        con.execute(f"DELETE FROM {EVENTS_TABLE} WHERE rowid = 20")
    for r in (cli("rebuild", "--data", str(data), cwd=tmp_path),
              cli("replay", "--data", str(data), "--to-position", "40", "--into", str(tmp_path / "r"), cwd=tmp_path)):
        output = f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr:\n{r.stderr}"
        assert r.returncode == 1 and "Traceback" not in r.stderr, output
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "from position 19 to 21" in lines[0] and "engage verify" in lines[0], output


def test_second_engine_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data")
    try:
        engine.start()
        r = cli("up", "--data", str(engine.data), "--listen", "127.0.0.1:0", "--nats-port", "0", cwd=tmp_path)
        one_line_error(r, str(engine.data))
        # The refused one touched nothing: the first still serves both paths.
        assert engine.get("/health").status_code == 200
        assert port_open(engine.nats_port)
        assert engine.proc is not None and engine.proc.poll() is None
    finally:
        engine.kill()


def test_emit_to_a_closed_http_port(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev(1, "idea.voted", {"idea": "i"})))
    url = f"http://127.0.0.1:{free_port()}"
    one_line_error(cli("emit", str(events), "--http", url, cwd=tmp_path), url, "cannot reach")


def test_emit_to_a_closed_nats_port(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev(1, "idea.voted", {"idea": "i"})))
    url = f"nats://127.0.0.1:{free_port()}"
    one_line_error(cli("emit", str(events), "--nats", url, cwd=tmp_path), url, "cannot reach")


# --- help ----------------------------------------------------------------------------------------


def test_help_lists_the_commands_with_examples(tmp_path: Path) -> None:
    r = cli("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", r.stdout, re.MULTILINE), command
        assert f"engage {command}" in r.stdout, command


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_shows_examples(tmp_path: Path, command: str) -> None:
    r = cli(command, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: engage {command}")
    assert "example" in r.stdout.lower(), f"`engage {command} --help` shows no example:\n{r.stdout}"
    assert re.search(rf"^\s+engage {command} ", r.stdout, re.MULTILINE), r.stdout


# --- up: where it listens, port 0, clean stops -----------------------------------------------------


class Up:
    """`engage up` with its output in files, to read the lines it prints while it runs."""

    def __init__(self, data: Path, *args: str) -> None:
        self.out = data.parent / f"{data.name}.stdout"
        self.err = data.parent / f"{data.name}.stderr"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([*ENGAGE, "up", "--data", str(data), *args], stdout=out, stderr=err,
                                         start_new_session=True)

    @property
    def stdout(self) -> str:
        return self.out.read_text()

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        end = time.time() + timeout
        while time.time() < end:
            if found := re.search(pattern, self.stdout, re.MULTILINE):
                return found
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.stdout}\n{self.stderr}"
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.stdout}\n{self.stderr}")

    def stop(self, sig: signal.Signals, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def listening(up: Up) -> tuple[str, str]:
    """The NATS and HTTP URLs `up` printed."""
    nats_url = up.wait_for(r"^  nats  (nats://127\.0\.0\.1:(\d+))  ").group(1)
    http_url = up.wait_for(r"^  http  (http://127\.0\.0\.1:(\d+))  ").group(1)
    return nats_url, http_url


def test_up_on_port_0_prints_the_chosen_ports_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Up(data, "--listen", "127.0.0.1:0", "--nats-port", "0")
    try:
        head = first.wait_for(r"^engage up: data in (.+) \(log head at position (\d+)\)$")
        assert (head.group(1), head.group(2)) == (str(data.resolve()), "0")
        nats_url, http_url = listening(first)
        assert not nats_url.endswith(":0") and not http_url.endswith(":0")

        # The printed URLs work: HTTP answers, and an event published to the printed NATS URL lands.
        assert httpx.get(http_url + "/health", timeout=10).json()["log"]["head"] == 0
        sent = cli("emit", "-", "--nats", nats_url, cwd=tmp_path, stdin=ndjson(ev(1, "idea.voted", {"idea": "i"})))
        assert sent.returncode == 0, sent.stderr
        wait_for_head(http_url, 1)

        assert first.stop(signal.SIGTERM) == 0, first.stderr
        assert first.stdout.rstrip().endswith("engage up: stopped"), first.stdout
        assert "Traceback" not in first.stderr, first.stderr
        assert not port_open(int(nats_url.rsplit(":", 1)[1])), "nats-server outlived the engine"
        assert not port_open(int(http_url.rsplit(":", 1)[1]))
    finally:
        first.kill()

    # SIGINT (Ctrl-C) stops it as cleanly, and a restart carries on where the last run stopped.
    second = Up(data, "--listen", "127.0.0.1:0", "--nats-port", "0")
    try:
        second.wait_for(r"^engage up: data in .+ \(log head at position 1\)$")
        _, http_url = listening(second)
        assert httpx.get(http_url + "/health", timeout=10).json()["log"]["head"] == 1
        assert second.stop(signal.SIGINT) in (0, 130), second.stderr
        assert second.stdout.rstrip().endswith("engage up: stopped"), second.stdout
        assert "Traceback" not in second.stderr, second.stderr
    finally:
        second.kill()


def test_up_whose_output_reader_went_away_runs_on_and_stops_cleanly(tmp_path: Path) -> None:
    """`engage up | head -1`: the pipe closes after the first line."""
    proc = subprocess.Popen([*ENGAGE, "up", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                             "--nats-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"engage up: data in")
        proc.stdout.close()
        time.sleep(1)
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert b"Traceback" not in err and b"stopped on an error" not in err, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_up_waits_for_a_nats_server_that_does_not_answer_and_stops_cleanly(tmp_path: Path) -> None:
    url = f"nats://engage:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    up = Up(tmp_path / "data", "--listen", "127.0.0.1:0", "--nats", url)
    try:
        up.wait_for(r"^engage up: waiting for NATS at nats://engage:\*\*\*@127\.0\.0\.1:\d+ ")
        time.sleep(3)  # a few more attempts, one a second
        assert up.stop(signal.SIGTERM) == 0, up.stderr
        assert up.stdout.rstrip().endswith("engage up: stopped"), up.stdout
        assert "Traceback" not in up.stderr and "s3cret" not in up.stdout + up.stderr
        failures = [line for line in up.stderr.splitlines() if "Connect call failed" in line]
        assert len(failures) == 1, up.stderr  # said once, not every second
    finally:
        up.kill()


def wait_for_head(http_url: str, position: int, timeout: float = 30) -> None:
    end = time.time() + timeout
    head = -1
    while time.time() < end:
        head = httpx.get(http_url + "/health", timeout=10).json()["log"]["head"]
        if head >= position:
            return
        time.sleep(0.05)
    raise AssertionError(f"log head {head} did not reach {position}")


# --- emit, export, verify against one engine -----------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("cli") / "data")
    try:
        eng.start()
        yield eng
    finally:
        eng.kill()


def head(eng: EngineProcess) -> int:
    return int(eng.get("/health").json()["log"]["head"])


def test_emit_over_http_prints_the_count_of_each_outcome(engine: EngineProcess, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(
        ndjson(
            ev("http-1", "customer.registered", {"name": "Ada"}, customer="c-http"),
            ev("http-2", "idea.voted", {"idea": "i-1"}, customer="c-http"),
            ev("http-3", "content.shared", {"url": "https://example.org/a"}, customer="c-http"),
            ev("http-2", "idea.voted", {"idea": "i-1"}, customer="c-http"),
            ev("http-4", "review.posted", {"product": "p", "rating": 6}, customer="c-http"),
        )
        + b"\n   \n"  # blank lines are skipped, not malformed
        + ndjson(ev("http-5", "nonsense.happened", {}, customer="c-http"))
    )
    r = cli("emit", str(events), "--http", engine.http, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert counts(r.stdout) == {"accepted": 3, "duplicate": 1, "schema": 1, "unknown_type": 1}, r.stdout


def test_emit_interrupted_midway_prints_what_it_counted(engine: EngineProcess, tmp_path: Path) -> None:
    before = head(engine)
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(*(ev(f"int-{k}", "idea.voted", {"idea": "i"}, customer="c-int") for k in range(40_000))))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    proc = subprocess.Popen([*ENGAGE, "emit", str(events), "--http", engine.http], cwd=tmp_path, env=clean,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while head(engine) < before + 3000:  # a few batches answered, most still to send
            assert proc.poll() is None and time.time() < deadline, proc.poll()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopped after" in err and "safe" in err, err
    accepted = counts(out)["accepted"]
    # batches go one after the other: when the third is in the log, the first two were answered
    assert 2000 <= accepted <= head(engine) - before < 40_000, (accepted, out)


def test_emit_reads_standard_input_over_nats(engine: EngineProcess, tmp_path: Path) -> None:
    before = head(engine)
    stdin = ndjson(*(ev(f"nats-{i}", "idea.voted", {"idea": f"i-{i}"}, customer="c-nats") for i in range(3)))
    r = cli("emit", "-", "--nats", engine.nats, cwd=tmp_path, stdin=stdin)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert counts(r.stdout) == {"published": 3}, r.stdout
    engine.wait_for_head(before + 3)
    # The same again, past the stream's 100 ms window: the engine decides them duplicates, the log
    # does not grow and nothing is rejected.
    again = cli("emit", "-", "--nats", engine.nats, cwd=tmp_path, stdin=stdin)
    assert again.returncode == 0, again.stderr
    assert counts(again.stdout) == {"published": 3}, again.stdout
    import time

    time.sleep(1)  # the engine has decided them by now (it keeps up with far more)
    assert head(engine) == before + 3
    assert all(r["id"] not in {f"e-nats-{i}" for i in range(3)} for r in engine.get("/rejects").json()["items"])


def export_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_export_to_a_file_then_verify_it(engine: EngineProcess, tmp_path: Path) -> None:
    sent = cli("emit", "-", "--http", engine.http, cwd=tmp_path,
               stdin=ndjson(ev("export-1", "idea.voted", {"idea": "i"}, customer="c-export")))
    assert sent.returncode == 0, sent.stderr
    n = head(engine)
    out = tmp_path / "log.jsonl"
    r = cli("export", "--data", str(engine.data), "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert f"exported {n} records to {out}" in r.stderr
    records = export_records(out)
    assert [rec["position"] for rec in records] == list(range(1, n + 1))
    assert "e-export-1" in {rec["event"]["id"] for rec in records}

    verified = cli("verify", str(out), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok"), verified.stdout
    assert str(n) in verified.stdout

    assert out.stat().st_mode & 0o777 == 0o600  # an export is its owner's alone (`--decrypt` holds personal data)
    into_directory = cli("export", "--data", str(engine.data), "-o", str(tmp_path), cwd=tmp_path)
    one_line_error(into_directory, "is a directory", str(tmp_path / "export.jsonl"))

    live = cli("verify", "--data", str(engine.data), cwd=tmp_path)
    assert live.returncode == 0, live.stdout + live.stderr
    assert live.stdout.startswith("ok"), live.stdout

    # Exit 1 and the first bad position when the export was changed.
    lines = out.read_text().splitlines()
    tampered = json.loads(lines[0])
    tampered["event"]["source"] = "someone-else"
    lines[0] = json.dumps(tampered)
    bad = tmp_path / "tampered.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    broken = cli("verify", str(bad), cwd=tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "Traceback" not in broken.stderr
    assert "position 1" in broken.stdout, broken.stdout


def test_verify_against_a_head_catches_an_export_cut_short(engine: EngineProcess, tmp_path: Path) -> None:
    """Every prefix of a chain verifies; the head hash /health shows is what an export must reach."""
    sent = cli("emit", "-", "--http", engine.http, cwd=tmp_path,
               stdin=ndjson(*(ev(f"head-{n}", "idea.voted", {"idea": "i"}, customer="c-head") for n in range(3))))
    assert counts(sent.stdout) == {"accepted": 3}, sent.stdout + sent.stderr
    log_head = engine.get("/health").json()["log"]
    out = tmp_path / "log.jsonl"
    assert cli("export", "--data", str(engine.data), "-o", str(out), cwd=tmp_path).returncode == 0
    records = export_records(out)
    assert (records[-1]["position"], records[-1]["hash"]) == (log_head["head"], log_head["head_hash"])

    whole = cli("verify", str(out), "--head", log_head["head_hash"], cwd=tmp_path)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert whole.stdout.strip() == f"ok: {log_head['head']} records, chain intact; head hash {log_head['head_hash']}"

    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(line + "\n" for line in out.read_text().splitlines()[:-1]))
    assert cli("verify", str(cut), cwd=tmp_path).returncode == 0  # a prefix, intact as far as it goes
    short = cli("verify", str(cut), "--head", log_head["head_hash"], cwd=tmp_path)
    assert short.returncode == 1, short.stdout + short.stderr
    assert short.stdout.startswith(f"broken at position {log_head['head']}: missing"), short.stdout

    live = cli("verify", "--data", str(engine.data), "--head", log_head["head_hash"], cwd=tmp_path)
    assert live.returncode == 0, live.stdout + live.stderr
    one_line_error(cli("verify", str(out), "--head", str(log_head["head"]), cwd=tmp_path), "--head", "64")


def test_export_decrypt_adds_readable_personal_fields_outside_the_hash(engine: EngineProcess,
                                                                       tmp_path: Path) -> None:
    sent = cli("emit", "-", "--http", engine.http, cwd=tmp_path, stdin=ndjson(
        ev("decrypt-1", "customer.registered", {"name": "Grace Hopper", "email": "grace@example.org",
                                                "locale": "en-US"}, customer="c-decrypt"),
        ev("decrypt-2", "review.posted", {"product": "p", "rating": 5, "text": "Brilliant kettle"},
           customer="c-decrypt"),
        ev("decrypt-3", "idea.voted", {"idea": "i-1"}, customer="c-decrypt"),
    ))
    assert counts(sent.stdout) == {"accepted": 3}, sent.stdout + sent.stderr

    plain = cli("export", "--data", str(engine.data), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "Grace Hopper" not in plain.stdout and "Brilliant kettle" not in plain.stdout
    assert all("personal" not in json.loads(line) for line in plain.stdout.splitlines())

    out = tmp_path / "decrypted.jsonl"
    r = cli("export", "--data", str(engine.data), "--decrypt", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    by_id = {rec["event"]["id"]: rec for rec in export_records(out)}
    registered, review = by_id["e-decrypt-1"], by_id["e-decrypt-2"]
    assert registered["personal"] == {"name": "Grace Hopper", "email": "grace@example.org"}
    assert registered["event"]["data"]["locale"] == "en-US"  # not personal data: stored as sent
    assert registered["event"]["data"]["name"] != "Grace Hopper"
    assert review["personal"] == {"text": "Brilliant kettle"}
    assert "personal" not in by_id["e-decrypt-3"]  # no personal field, nothing added

    verified = cli("verify", str(out), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok"), verified.stdout

    to_stdout = cli("export", "--data", str(engine.data), "--decrypt", cwd=tmp_path)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()] == export_records(out)


def test_the_http_socket_answers_without_waiting_for_delayed_acks() -> None:
    """Kept-alive clients waited ~40 ms per answer until the listening socket set TCP_NODELAY
    (inherited by accepted connections on Linux)."""
    import socket

    from engine.runtime import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_emit_to_a_nats_server_without_the_stream_says_so(nats_server: NatsServer, tmp_path: Path) -> None:
    """A NATS server that is not the engine's (no stream takes touchpoints.>): one line, not a traceback."""
    r = cli("emit", "-", "--nats", nats_server.url, cwd=tmp_path,
            stdin=ndjson(ev("stray", "idea.voted", {"idea": "i"})))
    one_line_error(r, "no JetStream stream", "touchpoints.emit")


def test_emit_over_nats_says_so_when_the_server_goes_away_midway(nats_server: NatsServer, tmp_path: Path) -> None:
    """It blamed the stream ("a full disk, or a stream at its limits?") for a server that had gone."""
    import asyncio

    import nats as nats_client

    from engine.jetstream import STREAM, ensure_stream

    async def stored(create: bool = False) -> int:
        """The messages the stream holds (it is created first, as the engine would)."""
        nc = await nats_client.connect(nats_server.url)
        try:
            js = nc.jetstream()
            if create:
                await ensure_stream(js)
            return int((await js.stream_info(STREAM)).state.messages)
        finally:
            await nc.close()

    asyncio.run(stored(create=True))
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(*(ev(f"gone-{k}", "idea.voted", {"idea": "i"}) for k in range(60_000))))
    proc = subprocess.Popen([*ENGAGE, "emit", str(events), "--nats", nats_server.url], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while asyncio.run(stored()) < 3000:  # publishing, most still to send
            assert proc.poll() is None and time.time() < deadline, proc.poll()
            time.sleep(0.05)
        nats_server.kill()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert "lost the connection to NATS" in err and "still running" in err and "full disk" not in err, err


def damage_page(path: Path, page: int) -> None:
    """Overwrite the header of one page of an SQLite file (what a bad disk block looks like)."""
    size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as f:
        f.seek(size * (page - 1) + (100 if page == 1 else 0))
        f.write(b"\xff" * 8)


def test_a_damaged_log_file_is_a_break_for_verify_and_one_line_for_export(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = Log(data / "log.sqlite")
    log.commit([Received(ev(n, "idea.voted", {"idea": "i"}), "http", datetime.now(UTC)) for n in range(500)])
    log.close()
    con = sqlite3.connect(data / "log.sqlite")
    (root,) = con.execute("SELECT rootpage FROM sqlite_schema WHERE name=?", (EVENTS_TABLE,)).fetchone()
    (first_leaf,) = con.execute("SELECT pageno FROM dbstat WHERE name=? AND pagetype='leaf' ORDER BY path LIMIT 1",
                                (EVENTS_TABLE,)).fetchone()
    con.close()
    for page, where in ((first_leaf, "records from here on cannot be read"), (root, "is damaged"),
                        (1, "is damaged")):
        copy = tmp_path / f"page-{page}"
        shutil.copytree(data, copy)
        damage_page(copy / "log.sqlite", page)
        verified = cli("verify", "--data", str(copy), cwd=tmp_path)
        assert verified.returncode == 1 and "Traceback" not in verified.stderr, verified.stdout + verified.stderr
        assert verified.stdout.startswith("broken at position 1: ") and where in verified.stdout, verified.stdout
        exported = cli("export", "--data", str(copy), "-o", str(tmp_path / "out.jsonl"), cwd=tmp_path)
        assert exported.returncode == 1 and "Traceback" not in exported.stderr, exported.stderr
        assert len(exported.stderr.strip().splitlines()) == 1 and "damaged" in exported.stderr, exported.stderr
        assert not (tmp_path / "out.jsonl").exists()  # no half export


def archive(tmp_path: Path) -> Path:
    """A data directory of five events of c-ro, rebuilt: what an auditor archives."""
    data = tmp_path / "data"
    log = Log(data / "log.sqlite")
    log.commit([Received(ev(1, "customer.registered", {"name": "Ada"}, customer="c-ro"), "http", datetime.now(UTC)),
                *(Received(ev(n, "idea.voted", {"idea": f"i-{n}"}, customer="c-ro"), "http", datetime.now(UTC))
                  for n in range(2, 6))])
    log.close()
    assert cli("rebuild", "--data", str(data), cwd=tmp_path).returncode == 0
    return data


def test_a_snapshot_on_read_only_media_can_be_audited(tmp_path: Path) -> None:
    """An auditor's archive (a read-only mount; here an immutable directory, chattr +i): WAL
    readers need a shared-memory file they cannot make there, and every audit tool failed with
    'unable to open database file'."""
    data = archive(tmp_path)
    subprocess.run(["chattr", "+i", str(data)], check=True)
    try:
        verified = cli("verify", "--data", str(data), cwd=tmp_path)
        assert verified.returncode == 0 and verified.stdout.startswith("ok: 5 records"), verified.stderr
        exported = cli("export", "--data", str(data), "--decrypt", cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        assert [json.loads(line)["position"] for line in exported.stdout.splitlines()] == [1, 2, 3, 4, 5]
        assert json.loads(exported.stdout.splitlines()[0])["personal"] == {"name": "Ada"}
        history = cli("history", "c-ro", "--data", str(data), "--json", cwd=tmp_path)
        assert history.returncode == 0 and "Ada" in history.stdout, history.stderr
        replayed = cli("replay", "--data", str(data), "--to-position", "3", "--into", str(tmp_path / "at-3"),
                       cwd=tmp_path)
        assert replayed.returncode == 0, replayed.stderr
    finally:
        subprocess.run(["chattr", "-i", str(data)], check=True)
    assert cli("verify", "--data", str(tmp_path / "at-3"), cwd=tmp_path).stdout.startswith("ok: 3 records")


def test_a_snapshot_on_read_only_media_can_be_served(tmp_path: Path) -> None:
    """`engage up --read-only` over an auditor's archive: it took a lock file in the directory and
    opened the read models for writing, and refused to start."""
    data = archive(tmp_path)
    (data / "engage.lock").unlink()  # an archive holds the log and the read models
    subprocess.run(["chattr", "+i", str(data)], check=True)
    engine = EngineProcess(data, extra=["--read-only"])
    try:
        engine.start()
        profile = httpx.get(f"{engine.http}/customers/c-ro", params={"as_of": "2026-10-02T00:00:00Z"})
        assert profile.status_code == 200, profile.text
        assert profile.json()["engagement"]["level"] == "participant"
        timeline = httpx.get(f"{engine.http}/customers/c-ro/timeline").json()
        assert sorted(item["position"] for item in timeline["items"]) == [1, 2, 3, 4, 5]
        health = httpx.get(f"{engine.http}/health").json()
        assert health["projections"]["read-models"]["position"] == 5 and health["status"] == "ok", health
        assert engine.stop() == 0
        assert sorted(p.name for p in data.iterdir()) == ["log.sqlite", "read.sqlite"]  # nothing written there
    finally:
        engine.kill()
        subprocess.run(["chattr", "-i", str(data)], check=True)


@pytest.mark.parametrize("command", [("export",), ("history", "c-pipe", "--json")])
def test_a_reader_that_leaves_early_ends_the_output_quietly(tmp_path: Path, command: tuple[str, ...]) -> None:
    """`engage export | head -1`: more output than a pipe holds, and the reader goes after a line."""
    data = tmp_path / "data"
    log = Log(data / "log.sqlite")
    log.commit([Received(ev(n, "comment.posted", {"thread": "t", "text": "x" * 200}, customer="c-pipe"), "http",
                         datetime.now(UTC)) for n in range(1000)])
    log.close()
    assert cli("rebuild", "--data", str(data), cwd=tmp_path).returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    proc = subprocess.Popen([*ENGAGE, *command, "--data", str(data)], cwd=tmp_path, env=clean,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["position"] in (1, 1000)
    proc.stdout.close()  # the reader leaves
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


def test_a_data_directory_open_to_others_is_tightened_and_an_auth_file_said_so(tmp_path: Path) -> None:
    """The directory holds the keys to every personal field, the auth file the tokens: a directory
    made by hand (mode 755) is tightened, the owner of an auth file at 644 is told."""
    data, auth = tmp_path / "data", tmp_path / "auth.toml"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    auth.write_text(f'[tokens.ops]\nrole = "admin"\ntoken = "{"t" * 32}"\n')
    os.chmod(auth, 0o644)
    engine = EngineProcess(data, extra=["--auth", str(auth)]).start()
    try:
        assert data.stat().st_mode & 0o777 == 0o700
        assert f"--auth {auth} is open to other users (mode 644)" in engine.log_tail(20_000)
    finally:
        assert engine.stop() == 0


def test_up_against_a_nats_server_that_refuses_its_credentials_says_so(tmp_path: Path) -> None:
    """It waited for ever, saying "is it running?" (found by a probe): a refusal is final."""
    binary = find_binary()
    assert binary is not None
    port = free_port()
    server = subprocess.Popen([str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js"),
                               "--user", "producer", "--pass", "s3cret"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for url in (f"nats://127.0.0.1:{port}", f"nats://producer:wrong@127.0.0.1:{port}"):
            r = cli("up", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0", "--nats", url, cwd=tmp_path)
            one_line_error(r, f"NATS at nats://{'producer:***@' if 'wrong' in url else ''}127.0.0.1:{port} refused "
                              "the engine's credentials", "nats://USER:PASSWORD@host:port")
            assert "wrong" not in r.stderr
    finally:
        server.terminate()
        server.wait(10)
