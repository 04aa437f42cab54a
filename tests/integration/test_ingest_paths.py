"""Every outcome of SPEC §2 over both paths, NATS and HTTP, against real `engage up` processes."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from tests.integration.engine_process import EngineProcess, engage
from tests.samples import ev, outcome_cases


def post(eng: EngineProcess, body: bytes, content_type: str = "application/x-ndjson") -> httpx.Response:
    return httpx.post(eng.http + "/events", content=body, headers={"content-type": content_type}, timeout=60)


def http_outcome(answer: dict[str, Any]) -> str:
    if answer["accepted"]:
        return "accepted"
    if answer["duplicates"]:
        return "duplicate"
    return str(answer["rejected"][0]["reason"])


def all_rejects(eng: EngineProcess) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = eng.get("/rejects", limit=1000, **({"cursor": cursor} if cursor else {})).json()
        items += page["items"]
        cursor = page["next"]
        if cursor is None:
            return items


def logged_events(eng: EngineProcess, data: Path) -> list[dict[str, Any]]:
    """The log's events, personal fields masked (their ciphertext differs between two logs)."""
    r = engage("export", "--data", str(data))
    assert r.returncode == 0, r.stderr
    events = []
    for line in r.stdout.splitlines():
        event = json.loads(line)["event"]
        for name in ("text", "title", "subject", "name", "email"):
            if name in event.get("data", {}):
                event["data"][name] = "<personal>"
        events.append(event)
    return events


def test_every_outcome_over_http(engine: EngineProcess) -> None:
    for i, (raw, want) in enumerate(outcome_cases()):
        r = post(engine, raw + b"\n")
        assert r.status_code == 200, (i, r.text)
        assert http_outcome(r.json()) == want, (i, raw[:80], r.json())


def test_schema_details_name_the_field(engine: EngineProcess) -> None:
    body = b"\n".join([
        ev(1, "review.posted", {"product": "p", "rating": 6}),
        ev(2, "comment.posted", {"thread": "t"}, identity={"channel": "twitter", "handle": "@"}),
        ev(3, "idea.voted", {"idea": "i", "note": "typo"}),
        json.dumps({"id": "e-4", "type": "idea.voted", "occurred_at": "2026-10-01T12:00:00Z", "source": "s",
                    "channel": "web", "data": {"idea": "i"}}).encode(),
    ])
    rejected = post(engine, body).json()["rejected"]
    details = {item["id"]: item["detail"] for item in rejected}
    assert details["e-1"].startswith("data.rating")
    assert details["e-2"].startswith("identity.handle")
    assert "data.note" in details["e-3"]
    assert "customer" in details["e-4"]


async def test_nats_gives_the_same_outcomes_as_http(tmp_path: Path) -> None:
    cases = outcome_cases()
    by_http = EngineProcess(tmp_path / "http").start()
    by_nats = EngineProcess(tmp_path / "nats").start()
    try:
        for raw, _ in cases:
            assert post(by_http, raw + b"\n").status_code == 200
        nc = await nats.connect(by_nats.nats)
        js = nc.jetstream()
        for raw, _ in cases:
            await js.publish("touchpoints.test", raw)  # no Nats-Msg-Id: the engine's own dedupe decides
        await nc.close()
        accepted = sum(1 for _, want in cases if want == "accepted")
        rejected = sum(1 for _, want in cases if want not in ("accepted", "duplicate"))
        by_nats.wait_for_head(accepted)
        deadline = time.time() + 30
        while len(all_rejects(by_nats)) < rejected and time.time() < deadline:
            time.sleep(0.1)

        def outcomes(eng: EngineProcess) -> list[tuple[str | None, str, str]]:
            return [(r["id"], r["reason"], r["detail"]) for r in all_rejects(eng)]

        assert outcomes(by_nats) == outcomes(by_http)
        assert [r["via"] for r in all_rejects(by_nats)] == ["nats:touchpoints.test"] * rejected
        assert {r["via"] for r in all_rejects(by_http)} == {"http"}
        assert logged_events(by_nats, by_nats.data) == logged_events(by_http, by_http.data)
        assert len(logged_events(by_nats, by_nats.data)) == accepted
    finally:
        by_http.kill()
        by_nats.kill()


def test_json_array_body_answers_each_element(engine: EngineProcess) -> None:
    body = json.dumps([json.loads(ev(1, "idea.voted", {"idea": "i"})), 42,
                       json.loads(ev(2, "idea.voted", {"idea": "i", "x": 1})),
                       json.loads(ev(1, "idea.voted", {"idea": "i"}))]).encode()
    answer = post(engine, body, "application/json").json()
    assert answer["accepted"] == 1 and answer["duplicates"] == 1
    assert [(x["index"], x["id"], x["reason"]) for x in answer["rejected"]] == [
        (1, None, "malformed"), (2, "e-2", "schema")]


def test_single_json_event_that_is_not_json_is_a_kept_malformed_reject(engine: EngineProcess) -> None:
    answer = post(engine, b"{not json", "application/json; charset=utf-8").json()
    assert answer["rejected"][0]["reason"] == "malformed"
    assert [r["reason"] for r in all_rejects(engine)] == ["malformed"]


def test_the_answer_names_the_id_of_an_event_with_a_byte_that_is_not_utf8(engine: EngineProcess) -> None:
    """/rejects named the id, the answer said null (found by a probe): both read it alike now."""
    raw = ev("bad-byte", "comment.posted", {"thread": "t", "text": "caf\u00e9"}).replace(b"\\u00e9", b"\xe9")
    answer = post(engine, raw + b"\n").json()
    assert [(item["id"], item["reason"]) for item in answer["rejected"]] == [("e-bad-byte", "malformed")], answer
    assert "e-bad-byte" in {item["id"] for item in all_rejects(engine) if item["reason"] == "malformed"}


def test_array_element_size_counts_its_compact_encoding(engine: EngineProcess) -> None:
    padded = json.dumps(json.loads(ev(1, "comment.posted", {"thread": "t", "text": "x" * 60_000})), indent=8000)
    assert len(padded.encode()) > 64 * 1024  # over the limit only because of white space
    answer = post(engine, f"[{padded}]".encode(), "application/json").json()
    assert answer["accepted"] == 1


@pytest.mark.parametrize(("body", "content_type", "status", "error"), [
    (b"[{}, ", "application/json", 400, "unparseable"),
    (b"[" * 1000 + b"]" * 1000, "application/json", 400, "unparseable"),  # deeper than the decoder goes
    (b"[{}, " + b"[" * 1000 + b"]" * 1000 + b"]", "application/json", 400, "unparseable"),
    (b"{}", "text/plain", 415, "unsupported_media_type"),
    (b"{}", "application/json; charset=latin-1", 415, "unsupported_media_type"),
    ("{}".encode("utf-16"), 'application/x-ndjson; charset="UTF-16"', 415, "unsupported_media_type"),
    (b"{}", "", 415, "unsupported_media_type"),
    (b"[" + b",".join([b"{}"] * 1001) + b"]", "application/json", 413, "too_many_events"),
    (b"\n".join([b"{}"] * 1001), "application/x-ndjson", 413, "too_many_events"),
])
def test_bodies_refused_whole_get_a_json_error(engine: EngineProcess, body: bytes, content_type: str,
                                               status: int, error: str) -> None:
    r = post(engine, body, content_type)
    assert r.status_code == status
    assert r.json()["error"] == error and r.json()["detail"]


def test_a_body_over_the_limit_is_413_with_json(engine: EngineProcess) -> None:
    r = post(engine, b"x" * (70 * 1024 * 1024), "application/x-ndjson")
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert "several requests" in r.json()["detail"]


def test_a_compressed_body_is_refused_whole(engine: EngineProcess) -> None:
    import gzip

    r = httpx.post(engine.http + "/events", content=gzip.compress(ev(1, "idea.voted", {"idea": "i"})),
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type" and "gzip" in r.json()["detail"]
    assert all_rejects(engine) == []  # refused whole, as a body of another content type is


def test_a_utf8_charset_is_welcome_and_a_byte_order_mark_is_named(engine: EngineProcess) -> None:
    good = ev(1, "idea.voted", {"idea": "i"})
    for content_type in ("application/json; charset=utf-8", "application/x-ndjson;charset=UTF-8"):
        assert post(engine, good, content_type).status_code == 200
    answer = post(engine, b"\xef\xbb\xbf" + ev(2, "idea.voted", {"idea": "i"})).json()
    assert [(r["reason"], "byte order mark" in r["detail"]) for r in answer["rejected"]] == [("malformed", True)]


def deeply_nested(event_id: str, depth: int = 1000) -> bytes:
    """An event whose data nests deeper than JSON decoders go (it crashed the log's writer)."""
    good = ev(event_id, "idea.voted", {"idea": "i"})
    return good.replace(b'{"idea": "i"}', b'{"a":' * depth + b"1" + b"}" * depth)


def test_deeply_nested_input_is_a_kept_reject_and_what_follows_is_accepted(engine: EngineProcess) -> None:
    answer = post(engine, deeply_nested("deep") + b"\n" + ev("after", "idea.voted", {"idea": "i"}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    # too deep to read even its id: kept as malformed, like any input that cannot be decoded
    assert [(r["index"], r["id"], r["reason"]) for r in answer.json()["rejected"]] == [(0, None, "malformed")]
    assert [(r["id"], r["reason"], r["detail"]) for r in all_rejects(engine)] == [
        (None, "malformed", "not JSON: nested too deeply")]


def test_ndjson_skips_blank_lines_and_indexes_events(engine: EngineProcess) -> None:
    body = b"\n" + ev(1, "idea.voted", {"idea": "i"}) + b"\r\n\n" + b"oops\n"
    answer = post(engine, body).json()
    assert answer["accepted"] == 1
    assert [(x["index"], x["reason"]) for x in answer["rejected"]] == [(1, "malformed")]


async def test_poison_messages_over_nats_are_kept_and_do_not_block_what_follows(engine: EngineProcess) -> None:
    import random

    rng = random.Random(7)
    poison = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(40)]
    poison += [b"", b"{}", b"null", b'{"type": 1}', b'{"type": "idea.voted"}', b"\x00" * 70_000]
    poison += [deeply_nested("deep"), b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000]
    nc = await nats.connect(engine.nats)
    js = nc.jetstream()
    for k, bad in enumerate(poison):
        await js.publish("touchpoints.fuzz", bad)
        await js.publish("touchpoints.fuzz", ev(f"ok-{k}", "idea.voted", {"idea": "i"}))
    await nc.close()
    engine.wait_for_head(len(poison))
    deadline = time.time() + 30
    while len(all_rejects(engine)) < len(poison) and time.time() < deadline:
        time.sleep(0.1)
    kept = all_rejects(engine)
    assert len(kept) == len(poison)
    assert {r["reason"] for r in kept} <= {"malformed", "unknown_type", "schema", "too_large"}
    assert engine.get("/health").json()["log"]["head"] == len(poison)


async def test_a_conflicting_resend_over_nats_is_kept_as_a_reject(engine: EngineProcess) -> None:
    import asyncio

    nc = await nats.connect(engine.nats)
    js = nc.jetstream()
    first = ev("c", "purchase.completed", {"order": "o", "amount_cents": 1, "currency": "EUR"})
    other = ev("c", "purchase.completed", {"order": "o", "amount_cents": 2, "currency": "EUR"})
    await js.publish("touchpoints.shop", first, headers={"Nats-Msg-Id": "e-c"})
    await asyncio.sleep(0.3)  # past the stream's 100 ms window: JetStream must not swallow it
    ack = await js.publish("touchpoints.shop", other, headers={"Nats-Msg-Id": "e-c"})
    await nc.close()
    assert not ack.duplicate
    engine.wait_for_head(1)
    deadline = time.time() + 30
    while not all_rejects(engine) and time.time() < deadline:
        time.sleep(0.1)
    assert [(r["id"], r["reason"]) for r in all_rejects(engine)] == [("e-c", "duplicate_conflict")]


def test_rejects_page_by_cursor_and_refuse_bad_parameters(engine: EngineProcess) -> None:
    import base64

    post(engine, b"\n".join([b"junk-1", b"junk-2", b"junk-3"]))
    first = engine.get("/rejects", limit=2).json()
    rest = engine.get("/rejects", limit=2, cursor=first["next"]).json()
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next"] is None
    assert [r["reason"] for r in engine.get("/rejects", reason="malformed").json()["items"]] == ["malformed"] * 3
    forged = base64.urlsafe_b64encode(b'["rejects","x"]').decode().rstrip("=")
    for params, name in [({"limit": "0"}, "limit"), ({"reason": "nope"}, "reason"), ({"cursor": "zz"}, "cursor"),
                         ({"cursor": forged}, "cursor"), ({"colour": "red"}, "colour"), ({"as_of": "May"}, "as_of")]:
        r = engine.get("/rejects", **params)
        assert r.status_code == 400 and r.json()["parameter"] == name, (params, r.text)
    # every read takes as_of (SPEC §7); the kept rejects follow the whole log, as /stats counts them (§3)
    assert engine.get("/rejects", as_of="2001-01-01T00:00:00Z").json() == engine.get("/rejects").json()


def test_a_page_of_rejects_that_is_exactly_the_last_has_no_next(engine: EngineProcess) -> None:
    """As every list: `next` only when there is more (it led to an extra, empty page)."""
    post(engine, b"\n".join([b"junk-1", b"junk-2", b"junk-3", b"junk-4"]))
    first = engine.get("/rejects", limit=2).json()
    last = engine.get("/rejects", limit=2, cursor=first["next"]).json()
    assert len(last["items"]) == 2 and last["next"] is None
    assert engine.get("/rejects", limit=4).json()["next"] is None


def test_post_events_metrics_and_verify_refuse_a_parameter_they_do_not_take(engine: EngineProcess) -> None:
    """`POST /events?dry_run=true` committed its events: a parameter no call takes is a 400 naming
    it, and nothing is written."""
    r = httpx.post(engine.http + "/events", params={"dry_run": "true"}, content=ev(1, "idea.voted", {"idea": "i"}),
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["parameter"] == "dry_run", r.text
    assert "takes none" in r.json()["detail"]
    assert engine.get("/health").json()["log"]["head"] == 0
    for path in ("/metrics", "/audit/verify"):
        r = engine.get(path, verbose="1")
        assert r.status_code == 400 and r.json()["parameter"] == "verbose", (path, r.text)
        assert engine.get(path).status_code == 200


def test_health_checks_its_parameters_too(engine: EngineProcess) -> None:
    assert engine.get("/health", as_of="2001-01-01T00:00:00Z").json()["status"] == "ok"
    for params, name in [({"as_of": "May"}, "as_of"), ({"verbose": "1"}, "verbose")]:
        r = engine.get("/health", **params)
        assert r.status_code == 400 and r.json()["parameter"] == name, (params, r.text)
