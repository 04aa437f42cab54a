"""`engage emit` against a real engine: a flag it cannot honour is one line and exit 2 before
anything is sent; a line the NATS server cannot take is counted and skipped, the rest sent; what a
destination answers is said in words, never a traceback."""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import nats
import pytest

from engine.jetstream import STREAM
from tests.integration.engine_process import EngineProcess
from tests.integration.test_cli import cli, counts, head, ndjson, one_line_error
from tests.samples import ev


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("emit") / "data")
    try:
        eng.start()
        yield eng
    finally:
        eng.kill()


async def _server_facts(url: str) -> tuple[int, int]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(STREAM)
        return int(info.state.last_seq), int(nc.max_payload)
    finally:
        await nc.close()


def stored(eng: EngineProcess) -> int:
    """How many messages the engine's stream has ever stored (its last sequence: the engine purges
    what it committed, so the count of messages it holds says nothing)."""
    return asyncio.run(_server_facts(eng.nats))[0]


def max_payload(eng: EngineProcess) -> int:
    return asyncio.run(_server_facts(eng.nats))[1]


def mention(name: str, text_bytes: int) -> bytes:
    """A mention the listening tool saw, its text `text_bytes` long (ASCII)."""
    return ev(name, "mention.observed", {"url": f"https://example.org/{name}", "text": "a" * text_bytes},
              identity={"channel": "twitter", "handle": "big"}, channel="twitter")


# --- flags a publisher cannot use: one line, exit 2, nothing sent ---------------------------------

MISTAKES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("a subject with a space", ("--nats", "{nats}", "--subject", "touchpoints.a b"), ("--subject", "spaces")),
    ("a subject that is all of them", ("--nats", "{nats}", "--subject", "touchpoints.>"), ("--subject", "wildcard")),
    ("a subject with a * token", ("--nats", "{nats}", "--subject", "touchpoints.*"), ("--subject", "wildcard")),
    ("a subject with a deeper >", ("--nats", "{nats}", "--subject", "touchpoints.a.>"), ("--subject", "wildcard")),
    ("a subject with an empty part", ("--nats", "{nats}", "--subject", "touchpoints..a"), ("--subject", "empty")),
    ("a subject ending in a dot", ("--nats", "{nats}", "--subject", "touchpoints."), ("--subject", "empty")),
    ("--subject over HTTP", ("--http", "{http}", "--subject", "touchpoints.x"), ("--subject", "--nats")),
    ("--token-name over HTTP", ("--http", "{http}", "--token-name", "producer-app"), ("--token-name", "--nats")),
    ("an empty token over HTTP", ("--http", "{http}", "--token", ""), ("--token", "empty")),
    ("an empty token over NATS", ("--nats", "{nats}", "--token", "", "--token-name", "producer-app"),
     ("--token", "empty")),
    ("an empty token name", ("--nats", "{nats}", "--token", "t" * 24, "--token-name", ""), ("--token-name", "empty")),
    ("an HTTP address without its scheme", ("--http", "127.0.0.1:{http_port}"), ("--http", "http://127.0.0.1:8080")),
]


@pytest.mark.parametrize(("args", "words"), [(a, w) for _, a, w in MISTAKES], ids=[n for n, _, _ in MISTAKES])
def test_a_flag_emit_cannot_honour_is_one_line_and_nothing_is_sent(
        engine: EngineProcess, tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev("mistake", "idea.voted", {"idea": "i"})))
    before, logged = stored(engine), head(engine)
    r = cli("emit", str(events),
            *(a.format(http=engine.http, nats=engine.nats, http_port=engine.http_port) for a in args), cwd=tmp_path)
    one_line_error(r, *words)
    assert r.stdout == ""  # no counts: refused before the first line was read
    assert stored(engine) == before and head(engine) == logged


def test_an_empty_token_from_the_environment_names_the_variable(engine: EngineProcess, tmp_path: Path) -> None:
    """It read "cannot reach …: Illegal header value b'Bearer '" while the engine was there."""
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev("empty-env", "idea.voted", {"idea": "i"})))
    r = cli("emit", str(events), "--http", engine.http, cwd=tmp_path, env={"ENGAGE_TOKEN": ""})
    one_line_error(r, "ENGAGE_TOKEN (--token)", "empty")


def test_over_http_a_nats_only_flag_is_refused_and_its_variable_left_alone(
        engine: EngineProcess, tmp_path: Path) -> None:
    """--subject and --token-name were silently ignored over HTTP; ENGAGE_TOKEN_NAME, set once for
    NATS in a producer's environment, is no mistake when it sends over HTTP."""
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev("nats-only", "idea.voted", {"idea": "i"}, customer="c-nats-only")))
    for flag, value in (("--subject", "touchpoints.x"), ("--token-name", "producer-app")):
        one_line_error(cli("emit", str(events), "--http", engine.http, flag, value, cwd=tmp_path), flag, "--nats")
    sent = cli("emit", str(events), "--http", engine.http, cwd=tmp_path, env={"ENGAGE_TOKEN_NAME": "producer-app"})
    assert sent.returncode == 0 and counts(sent.stdout) == {"accepted": 1}, sent


# --- a line over the NATS server's max_payload -----------------------------------------------------


def test_a_line_over_the_nats_max_payload_is_counted_not_sent_and_the_rest_are(
        engine: EngineProcess, tmp_path: Path) -> None:
    """It crashed (MaxPayloadError, exit 1, no counts) and sent nothing after that line; over HTTP
    the same line is a too_large reject, as the message says."""
    assert max_payload(engine) == 1 << 20  # the engine's nats-server as `engage up` starts it
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev("mp-1", "idea.voted", {"idea": "i"}, customer="c-mp"), mention("mp-big", 2 << 20),
                              ev("mp-2", "idea.voted", {"idea": "i"}, customer="c-mp")))
    before, logged = stored(engine), head(engine)
    r = cli("emit", str(events), "--nats", engine.nats, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r
    assert counts(r.stdout) == {"published": 2, "not sent: over the NATS max_payload of 1 MiB": 1}, r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "1 line was not sent" in lines[0] and "--http" in lines[0], r.stderr
    assert "too_large" in lines[0], r.stderr
    assert stored(engine) == before + 2
    engine.wait_for_head(logged + 2)
    # What the message advises: the same file over HTTP keeps the line as a reject.
    again = cli("emit", str(events), "--http", engine.http, cwd=tmp_path)
    assert again.returncode == 0 and counts(again.stdout) == {"duplicate": 2, "too_large": 1}, again
    rejected = [item for item in engine.get("/rejects", limit=1000).json()["items"] if item["id"] == "e-mp-big"]
    assert [item["reason"] for item in rejected] == ["too_large"]


def test_over_http_lines_over_64_kib_are_kept_as_rejects_and_one_over_the_body_limit_is_counted(
        engine: EngineProcess, tmp_path: Path) -> None:
    """1,000 lines over an event's 64 KiB filled one request past the engine's body limit: a 413
    for all of them, and emit stopped. They go in requests within the limit and are each a
    too_large reject; a line that no request can carry is counted, the lines after it sent."""
    from ops.answers import MAX_BODY

    big = [mention(f"hb-{n}", 64 * 1024) for n in range(1000)]
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev("hb-first", "idea.voted", {"idea": "i"}, customer="c-hb"), *big,
                              b"x" * MAX_BODY, ev("hb-last", "idea.voted", {"idea": "i"}, customer="c-hb")))
    r = cli("emit", str(events), "--http", engine.http, cwd=tmp_path, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r
    assert counts(r.stdout) == {"accepted": 2, "too_large": 1000,
                                f"not sent: over the engine's request body limit of {MAX_BODY:,} bytes": 1}, r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "1 line was not sent" in lines[0] and "body limit" in lines[0], r.stderr
    kept: set[str] = set()
    page = engine.get("/rejects", reason="too_large", limit=1000).json()
    while True:  # the module's engine keeps too_large rejects of other tests too
        kept |= {item["id"] for item in page["items"]}
        if page["next"] is None:
            break
        page = engine.get("/rejects", reason="too_large", limit=1000, cursor=page["next"]).json()
    assert {f"e-hb-{n}" for n in range(1000)} <= kept


def test_the_max_payload_counts_the_headers_too(engine: EngineProcess, tmp_path: Path) -> None:
    """The server weighs payload and headers together and drops the connection of a client that
    goes one byte over: emit checked nothing, and nats-py only the payload."""
    limit = max_payload(engine)

    def exactly(name: str, wire: int) -> Path:
        """A file of one line that takes `wire` bytes with its Nats-Msg-Id header on the wire."""
        header = len(f"NATS/1.0\r\nNats-Msg-Id: e-{name}\r\n\r\n".encode())
        base = mention(name, 0)
        line = mention(name, wire - header - len(base))
        assert len(line) + header == wire
        path = tmp_path / f"{name}.ndjson"
        path.write_bytes(line + b"\n")
        return path

    fits = cli("emit", str(exactly("mp-fits", limit)), "--nats", engine.nats, cwd=tmp_path)
    assert fits.returncode == 0 and counts(fits.stdout) == {"published": 1}, fits
    over = cli("emit", str(exactly("mp-over", limit + 1)), "--nats", engine.nats, cwd=tmp_path)
    assert over.returncode == 1 and "Traceback" not in over.stderr, over
    assert counts(over.stdout) == {"not sent: over the NATS max_payload of 1 MiB": 1}, over.stdout


# --- what a destination answers ---------------------------------------------------------------------


def test_an_http_address_ending_in_events_is_the_engines(engine: EngineProcess, tmp_path: Path) -> None:
    """It posted to /events/events and stopped on a 404."""
    for name, suffix in (("url-events", "/events"), ("url-events-slash", "/events/")):
        events = tmp_path / f"{name}.ndjson"
        events.write_bytes(ndjson(ev(name, "idea.voted", {"idea": "i"}, customer="c-url")))
        r = cli("emit", str(events), "--http", engine.http + suffix, cwd=tmp_path)
        assert r.returncode == 0 and counts(r.stdout) == {"accepted": 1}, r


def test_an_http_address_with_another_path_says_what_to_give(engine: EngineProcess, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev("url-other", "idea.voted", {"idea": "i"})))
    r = cli("emit", str(events), "--http", engine.http + "/api", cwd=tmp_path)
    one_line_error(r, "404", "as `engage up` prints it", "http://127.0.0.1:8080")


def test_http_to_the_nats_port_says_it_did_not_answer_http(engine: EngineProcess, tmp_path: Path) -> None:
    """The reason was empty ("cannot reach …: ;") when httpx's error had no message."""
    events = tmp_path / "events.ndjson"
    events.write_bytes(ndjson(ev("not-http", "idea.voted", {"idea": "i"})))
    url = f"http://127.0.0.1:{engine.nats_port}"
    line = one_line_error(cli("emit", str(events), "--http", url, cwd=tmp_path), url, "did not answer HTTP",
                          "NATS port")
    reason = line.split("did not answer HTTP (", 1)[1].split("):", 1)[0]
    assert reason.strip(), line


class _NotTheEngine(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what emit says, not the server's request log."""


def test_http_to_a_server_that_is_not_the_engine_says_so(tmp_path: Path) -> None:
    """A 200 that is not the engine's answer was a JSONDecodeError traceback."""
    server = HTTPServer(("127.0.0.1", 0), _NotTheEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        events = tmp_path / "events.ndjson"
        events.write_bytes(ndjson(ev("elsewhere", "idea.voted", {"idea": "i"})))
        url = f"http://127.0.0.1:{server.server_port}"
        one_line_error(cli("emit", str(events), "--http", url, cwd=tmp_path), url, "not the engine's answer")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_token_a_header_cannot_carry_is_sent_and_the_engine_answers(engine: EngineProcess, tmp_path: Path) -> None:
    """`--token` not in ASCII was a UnicodeEncodeError traceback, one with a line break "cannot reach"
    (this engine runs without --auth: any token is let through; test_roles checks a refusal)."""
    events = tmp_path / "events.ndjson"
    for k, token in enumerate(("é" * 24, "line\nbreak-" + "t" * 20, "trailing-space " + "t" * 10 + " ")):
        events.write_bytes(ndjson(ev(f"odd-token-{k}", "idea.voted", {"idea": "i"}, customer="c-odd-token")))
        r = cli("emit", str(events), "--http", engine.http, "--token", token, cwd=tmp_path)
        assert r.returncode == 0 and counts(r.stdout) == {"accepted": 1}, (token, r)
        assert json.dumps(token) not in r.stderr
