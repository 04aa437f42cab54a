"""Roles (issue 6): every call × every role, no token and a wrong one, over a real `engage up
--auth`; personal fields for the roles allowed; NATS users and subject permissions."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from tests.integration.engine_process import ENGAGE, EngineProcess, engage
from tests.samples import ev

TOKENS = {role: f"{role}-{secrets.token_hex(16)}" for role in ("producer", "reader", "agent", "auditor", "admin")}
WRONG = "not-a-token-" + secrets.token_hex(16)

# (method, path) -> the roles that may call it; None: anyone.
READ = {"reader", "agent", "auditor", "admin"}
CALLS: list[tuple[str, str, set[str] | None]] = [
    ("POST", "/events", {"producer", "admin"}),
    ("GET", "/health", None),
    ("GET", "/schema/openapi.json", None),
    ("GET", "/rejects", {"auditor", "admin"}),
    ("GET", "/audit/export", {"auditor", "admin"}),
    ("GET", "/audit/export?decrypt=true", {"auditor", "admin"}),
    ("GET", "/audit/verify", {"auditor", "admin"}),
    ("GET", "/customers", READ),
    ("GET", "/customers/c-1", READ),
    ("GET", "/customers/c-1/explain", READ),
    ("GET", "/customers/c-1/timeline", READ),
    ("GET", "/cases", READ),
    ("GET", "/cases/k-1", READ),
    ("GET", "/stats", READ),
    ("GET", "/community/c-1", READ),
    ("GET", "/metrics", READ),
    ("GET", "/", READ),
    ("GET", "/dashboard/panels", READ),
    ("GET", "/dashboard/profile?key=c-1", READ),
    ("GET", "/dashboard/static/dashboard.js", READ),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    tmp = tmp_path_factory.mktemp("roles")
    auth = tmp / "auth.toml"
    auth.write_text("".join(f'[tokens.{role}-app]\nrole = "{role}"\ntoken = "{token}"\n\n'
                            for role, token in TOKENS.items()))
    eng = EngineProcess(tmp / "data", extra=["--auth", str(auth)]).start()
    try:
        answer = httpx.post(eng.http + "/events", headers=bearer("producer") | {"content-type": "application/x-ndjson"},
                            content=b"\n".join([
                                ev(1, "customer.registered", {"name": "Ada Lovelace", "email": "ada@example.org"}),
                                ev(2, "case.opened", {"case": "k-1", "subject": "kettle"}),
                                ev(3, "case.note_added", {"case": "k-1", "agent": "a", "text": "INTERNAL"}),
                                ev(4, "consent.changed", {"purpose": "community_profile", "granted": True})]))
        assert answer.status_code == 200 and answer.json()["accepted"] == 4
        deadline = time.time() + 30
        while httpx.get(eng.http + "/health").json()["projections"]["read-models"]["lag"] > 0:
            assert time.time() < deadline
            time.sleep(0.05)
        yield eng
    finally:
        eng.kill()


def bearer(role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[role]}"}


def call(eng: EngineProcess, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = ev("m-" + secrets.token_hex(4), "idea.voted", {"idea": "i"}) if method == "POST" else None
    return httpx.request(method, eng.http + path, headers={**headers, "content-type": "application/json"},
                         content=body, timeout=30)


@pytest.mark.parametrize(("method", "path", "allowed"), CALLS, ids=[f"{m} {p}" for m, p, _ in CALLS])
def test_every_call_for_every_role_no_token_and_a_wrong_one(engine: EngineProcess, method: str, path: str,
                                                             allowed: set[str] | None) -> None:
    for role in TOKENS:
        answer = call(engine, method, path, bearer(role))
        if allowed is None or role in allowed:
            assert answer.status_code in (200, 404), (role, answer.status_code, answer.text[:200])
        else:
            assert answer.status_code == 403, (role, answer.status_code)
            assert answer.json()["error"] == "forbidden"
    for headers in ({}, {"authorization": f"Bearer {WRONG}"}, {"authorization": "Basic !!!"},
                    {"authorization": TOKENS["admin"]}):  # a token without its scheme is no token
        answer = call(engine, method, path, headers)
        if allowed is None:
            assert answer.status_code in (200, 404)
        else:
            assert answer.status_code == 401, (headers, answer.status_code)
            assert answer.json()["error"] == "unauthorized" and "Basic" in answer.headers["www-authenticate"]


def test_a_browser_can_send_the_token_as_basic_auth(engine: EngineProcess) -> None:
    basic = base64.b64encode(f"anyone:{TOKENS['reader']}".encode()).decode()
    page = httpx.get(engine.http + "/", headers={"authorization": f"Basic {basic}"})
    assert page.status_code == 200 and "data-stat" in page.text


def test_personal_fields_only_for_agent_and_admin(engine: EngineProcess) -> None:
    def timeline(role: str) -> str:
        return httpx.get(engine.http + "/customers/c-1/timeline", headers=bearer(role)).text

    for role in ("agent", "admin"):
        assert "Ada Lovelace" in timeline(role) and "ada@example.org" in timeline(role)
    for role in ("reader", "auditor"):
        items = json.loads(timeline(role))["items"]
        assert "Ada Lovelace" not in timeline(role)
        assert any(item["personal"] == ["email", "name"] for item in items)
    decrypted_answer = httpx.get(engine.http + "/audit/export?decrypt=true", headers=bearer("auditor"))
    decrypted = decrypted_answer.text
    assert decrypted_answer.headers["cache-control"] == "no-store"  # personal data: no cache keeps it
    assert httpx.get(engine.http + "/customers/c-1/timeline", headers=bearer("agent")).headers["cache-control"] == (
        "no-store")
    plain = httpx.get(engine.http + "/audit/export", headers=bearer("auditor")).text
    assert "Ada Lovelace" in decrypted and "Ada Lovelace" not in plain
    head = httpx.get(engine.http + "/health").json()["log"]
    assert httpx.get(engine.http + "/audit/verify", headers=bearer("auditor")).json() == {
        "ok": True, "records": head["head"], "head_hash": head["head_hash"], "broken": None}


def test_the_dashboard_shows_the_latest_rejects_only_to_those_who_may_read_rejects(engine: EngineProcess) -> None:
    bad = ev("rejected-for-auditors", "review.posted", {"product": "p", "rating": 9})
    answer = httpx.post(engine.http + "/events", headers=bearer("producer") | {"content-type": "application/json"},
                        content=bad)
    assert answer.json()["rejected"][0]["reason"] == "schema"
    for role in ("reader", "agent", "auditor", "admin"):
        page = httpx.get(engine.http + "/", headers=bearer(role)).text
        may = httpx.get(engine.http + "/rejects", headers=bearer(role)).status_code == 200
        assert ("e-rejected-for-auditors" in page) == may == (role in ("auditor", "admin")), role
        assert ("for auditors" in page) != may, role


def test_internal_notes_never_reach_the_community_view(engine: EngineProcess) -> None:
    for role in ("reader", "agent", "admin"):
        answer = httpx.get(engine.http + "/community/c-1", headers=bearer(role))
        assert answer.status_code == 200 and "INTERNAL" not in answer.text and "kettle" not in answer.text


def test_emit_over_nats_with_a_wrong_token_says_so_without_printing_it(engine: EngineProcess, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(ev("w1", "idea.voted", {"idea": "i"}) + b"\n")
    for name, token in (("producer-app", WRONG), ("reader-app", TOKENS["reader"])):
        done = engage("emit", str(events), "--nats", engine.nats.replace("nats://", f"nats://{name}:{token}@"))
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr.count("\n") == 1 and "refused the credentials" in done.stderr, done.stderr
        assert token not in done.stderr and f"{name}:***@" in done.stderr


def test_emit_over_nats_logs_in_with_a_token_from_the_environment(engine: EngineProcess, tmp_path: Path) -> None:
    """The token in the URL shows in ps; ENGAGE_TOKEN and ENGAGE_TOKEN_NAME keep it out of it."""
    events = tmp_path / "events.ndjson"
    events.write_bytes(ev("env-1", "idea.voted", {"idea": "i"}) + b"\n")

    def emit(**env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
        return subprocess.run([*ENGAGE, "emit", str(events), "--nats", engine.nats], capture_output=True, text=True,
                              timeout=60, env={**clean, **env})

    done = emit(ENGAGE_TOKEN=TOKENS["producer"], ENGAGE_TOKEN_NAME="producer-app")
    assert done.returncode == 0 and "published" in done.stdout, done
    deadline = time.time() + 30
    while "e-env-1" not in httpx.get(engine.http + "/customers/c-1/timeline", headers=bearer("reader")).text:
        assert time.time() < deadline
        time.sleep(0.1)
    refused = emit(ENGAGE_TOKEN=WRONG, ENGAGE_TOKEN_NAME="producer-app")
    assert refused.returncode == 2 and "refused the credentials of producer-app" in refused.stderr, refused
    assert WRONG not in refused.stderr and refused.stderr.count("\n") == 1
    nameless = emit(ENGAGE_TOKEN=TOKENS["producer"])
    assert nameless.returncode == 2 and "--token-name" in nameless.stderr and nameless.stderr.count("\n") == 1


def test_emit_over_http_sends_any_token_and_says_when_it_is_refused(engine: EngineProcess, tmp_path: Path) -> None:
    """A token not in ASCII was a UnicodeEncodeError traceback, one ending in a space "cannot reach"
    an engine that was there: both reach it now (as HTTP Basic) and are refused in one line."""
    events = tmp_path / "events.ndjson"
    # Not c-1's: a later test reads the newest event of its timeline.
    events.write_bytes(ev("odd-token", "idea.voted", {"idea": "i"}, customer="c-odd-token") + b"\n")
    for token in ("é" + WRONG, WRONG + " "):
        done = engage("emit", str(events), "--http", engine.http, "--token", token)
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done
        assert done.stderr.count("\n") == 1 and "refused the token (401)" in done.stderr, done.stderr
        assert WRONG not in done.stderr
    sent = engage("emit", str(events), "--http", engine.http, "--token", TOKENS["producer"])
    assert sent.returncode == 0 and "accepted" in sent.stdout, sent


async def test_nats_lets_only_producers_publish_touchpoints(engine: EngineProcess) -> None:
    with pytest.raises(NatsError):  # anonymous
        await nats.connect(engine.nats, max_reconnect_attempts=0, allow_reconnect=False, connect_timeout=5)
    with pytest.raises(NatsError):  # a reader has no NATS user
        await nats.connect(engine.nats.replace("nats://", f"nats://reader-app:{TOKENS['reader']}@"),
                           max_reconnect_attempts=0, allow_reconnect=False, connect_timeout=5)
    producer = engine.nats.replace("nats://", f"nats://producer-app:{TOKENS['producer']}@")
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    nc = await nats.connect(producer, error_cb=on_error)
    js = nc.jetstream()
    ack = await js.publish("touchpoints.shop", ev("n1", "idea.voted", {"idea": "i"}), headers={"Nats-Msg-Id": "e-n1"})
    assert ack.stream == "TOUCHPOINTS"
    await nc.publish("elsewhere", b"x")  # outside touchpoints.>: the server refuses it
    with pytest.raises(NatsError):  # nor may a producer touch the stream itself
        await js.delete_stream("TOUCHPOINTS")
    await nc.flush()
    await nc.close()
    refused = {str(e).lower() for e in errors}
    assert 'nats: permissions violation for publish to "elsewhere"' in refused, refused
    deadline = time.time() + 30
    url = engine.http + "/customers/c-1/timeline"
    while httpx.get(url, headers=bearer("reader")).json()["items"][0]["id"] != "e-n1":  # it was ingested
        assert time.time() < deadline
        time.sleep(0.1)


async def test_a_producer_cannot_read_the_touchpoints_the_engine_consumes(engine: EngineProcess) -> None:
    """JetStream hands every message to the consumer's inbox: under `_INBOX.>`, where producers
    may subscribe for their acks, any producer read every other producer's touchpoints."""
    producer = engine.nats.replace("nats://", f"nats://producer-app:{TOKENS['producer']}@")
    seen: list[bytes] = []
    errors: list[Exception] = []

    async def refused(e: Exception) -> None:
        errors.append(e)

    spy = await nats.connect(producer, error_cb=refused)

    async def spied(msg: Msg) -> None:
        seen.append(msg.data)

    await spy.subscribe("_INBOX.>", cb=spied)
    await spy.flush()
    admin = await nats.connect(engine.nats.replace("nats://", f"nats://admin-app:{TOKENS['admin']}@"),
                               error_cb=refused)
    secret = ev("spied-on", "customer.registered", {"name": "Victoria SECRETNAME"}, customer="c-spied")
    await admin.jetstream().publish("touchpoints.crm", secret, headers={"Nats-Msg-Id": "e-spied-on"})
    await admin.close()
    deadline = time.time() + 30
    while httpx.get(engine.http + "/customers/c-spied", headers=bearer("reader")).status_code != 200:
        assert time.time() < deadline  # consumed by the engine meanwhile
        await asyncio.sleep(0.1)
    await spy.flush()
    await spy.close()
    assert not [data for data in seen if b"SECRETNAME" in data], seen
    assert errors == []  # subscribing to _INBOX.> is allowed: what it got is all a producer gets




def test_auth_files_with_mistakes_are_one_line(tmp_path: Path) -> None:
    cases = {
        "not toml": "[tokens.x\n",
        "short": '[tokens.x]\nrole = "reader"\ntoken = "short"\n',
        "role": f'[tokens.x]\nrole = "boss"\ntoken = "{"t" * 30}"\n',
        "empty": "tokens = {}\n",
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        done = engage("up", "--data", str(tmp_path / "d"), "--auth", str(path), "--listen", "127.0.0.1:0",
                      "--nats-port", "0", timeout=60)
        assert done.returncode == 2 and "--auth" in done.stderr and "Traceback" not in done.stderr, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_beyond_loopback_only_with_auth(tmp_path: Path) -> None:
    done = engage("up", "--data", str(tmp_path / "d"), "--listen", "0.0.0.0:0", "--nats-port", "0", timeout=60)
    assert done.returncode == 2 and "--auth" in done.stderr
