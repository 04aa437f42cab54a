"""The erasure test that matters (issue 6): a canary in a customer's name, email, a post, rejected
events and a case reply, over NATS and HTTP; after `customer.erased`, no file under the data
directory (log, read models, their WAL, the JetStream store, anything) and no export holds the
canary in plain bytes, while the chain verifies and other customers' answers are unchanged."""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import nats

from tests.integration.engine_process import EngineProcess, engage

AT = "2026-10-01T12:00:00Z"


def event(i: str, typ: str, data: dict[str, Any] | None = None, **who: Any) -> bytes:
    e: dict[str, Any] = {"id": f"canary-{i}", "type": typ, "occurred_at": AT, "source": "test", "channel": "web",
                         **(who or {"customer": "c-canary"})}
    if data is not None:
        e["data"] = data
    return json.dumps(e).encode()


def hits(root: Path, needle: bytes) -> list[str]:
    """Every file under root whose bytes hold the needle."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and needle in path.read_bytes())


def until_no_hits(root: Path, needle: bytes, timeout: float = 10) -> list[str]:
    """`hits` once it is empty, or as it is after `timeout` seconds."""
    deadline = time.time() + timeout
    while (found := hits(root, needle)) and time.time() < deadline:
        time.sleep(0.05)
    return found


def settle(eng: EngineProcess, head: int, rejects: int) -> None:
    deadline = time.time() + 60
    while True:
        health = eng.get("/health").json()
        kept = sum(eng.get("/stats").json()["rejected"].values())
        if health["log"]["head"] >= head and health["projections"]["read-models"]["lag"] == 0 and kept >= rejects:
            return
        assert time.time() < deadline, (health, kept)
        time.sleep(0.1)


def post(eng: EngineProcess, *lines: bytes) -> dict[str, Any]:
    answer = httpx.post(eng.http + "/events", content=b"\n".join(lines),
                        headers={"content-type": "application/x-ndjson"}, timeout=30)
    assert answer.status_code == 200
    return dict(answer.json())


async def test_after_erasure_no_file_and_no_export_holds_the_canary(engine: EngineProcess, tmp_path: Path) -> None:
    canary = f"CANARY{secrets.token_hex(8)}"
    fan = {"identity": {"channel": "twitter", "handle": "@canary_fan"}}
    other = {"customer": "c-other"}
    # Over HTTP: the profile with name and email, the other customer, a case and its reply.
    answer = post(engine,
                  event("1", "customer.registered", {"name": f"Ada {canary}", "email": f"{canary}@example.org"}),
                  event("2", "purchase.completed", {"order": "o-1", "amount_cents": 100, "currency": "EUR"}),
                  event("3", "customer.registered", {"name": "Grace Other"}, **other),
                  event("4", "review.posted", {"product": "p", "rating": 5, "text": "fine"}, **other),
                  event("5", "case.opened", {"case": "k-canary", "subject": f"about {canary}"}),
                  event("6", "case.agent_replied", {"case": "k-canary", "agent": "a-1", "text": f"Dear {canary}"}),
                  event("7", "identity.linked", {"channel": "twitter", "handle": "canary_fan"}),
                  event("r1", "review.posted", {"product": "p", "rating": 11, "text": f"rejected {canary}"}))
    assert answer["accepted"] == 7 and [r["reason"] for r in answer["rejected"]] == ["schema"]
    # Over NATS: a post, a mention by the linked identity, rejects naming the customer and the identity.
    nc = await nats.connect(engine.nats)
    js = nc.jetstream()
    for raw, msg_id in ((event("8", "post.published", {"thread": "t", "title": canary, "text": f"I {canary}"}), "8"),
                        (event("9", "mention.observed", {"text": f"tweet {canary}"}, **fan), "9"),
                        (event("r2", "comment.posted", {"thread": 3, "text": canary}), "r2"),
                        (event("r3", "comment.posted", {"text": canary}, **fan), "r3")):
        await js.publish("touchpoints.test", raw, headers={"Nats-Msg-Id": f"canary-{msg_id}"})
    await nc.close()
    settle(engine, head=9, rejects=3)
    # Before the erasure the canary is readable by those allowed to: the test is not vacuous.
    before = tmp_path / "before.jsonl"
    assert engage("export", "--data", str(engine.data), "--decrypt", "-o", str(before)).returncode == 0
    assert before.read_bytes().count(canary.encode()) >= 6  # name, email, subject, reply, title, post, mention
    assert canary in engage("history", "c-canary", "--data", str(engine.data), "--json").stdout
    # The keys that shredding must destroy: the customer's and its linked identity's.
    con = sqlite3.connect(f"file:{engine.data / 'log.sqlite'}?mode=ro", uri=True)
    keys = [bytes(k) for (k,) in con.execute("SELECT key FROM keys WHERE owner IN ('c-canary', '~twitter:canary_fan')")]
    con.close()
    assert len(keys) == 2 and all(hits(engine.data, key) == ["log.sqlite"] or hits(engine.data, key) for key in keys)
    other_before = engine.get("/customers/c-other", as_of=AT).json()
    stats_before = engine.get("/stats", as_of=AT).json()

    assert post(engine, event("10", "customer.erased"))["accepted"] == 1
    settle(engine, head=10, rejects=3)
    # Later events for it are refused.
    late = post(engine, event("11", "purchase.completed", {"order": "o-2", "amount_cents": 1, "currency": "EUR"}))
    assert [r["reason"] for r in late["rejected"]] == ["erased"]
    settle(engine, head=10, rejects=4)

    # What the API says.
    assert engine.get("/customers/c-canary").json() == {"error": "erased"}
    assert engine.get("/cases/k-canary").json()["customer"] is None
    assert any(c["case"] == "k-canary" and c["customer"] is None for c in engine.get("/cases").json()["items"])
    assert engine.get("/customers/c-other", as_of=AT).json() == other_before
    stats_after = engine.get("/stats", as_of=AT).json()
    assert stats_after["profiles"] == stats_before["profiles"] - 1  # c-canary gone (its identity was linked)
    assert stats_after["cases"] == stats_before["cases"]  # its case is still counted
    assert engine.get("/customers/~twitter:canary_fan").json() == {"error": "not_found"}  # unlinked, no new events

    # No plain canary anywhere: while the engine runs, and after it stopped.
    export = tmp_path / "export.jsonl"
    done = engage("export", "--data", str(engine.data), "--decrypt", "-o", str(export))
    assert done.returncode == 0, done.stderr
    history = engage("history", "c-canary", "--data", str(engine.data), "--json")
    assert history.returncode == 0 and history.stdout and canary not in history.stdout
    needle = canary.encode()
    assert needle not in export.read_bytes()
    # The JetStream store drops the NATS messages once acked, a moment after their commit (the
    # server moves the ack floor, then the engine purges up to it): wait for that moment.
    assert until_no_hits(engine.data, needle) == []
    for key in keys:  # nor the keys: not in a WAL frame, not in a free page
        assert hits(engine.data, key) == []
    assert engine.stop() == 0
    assert hits(engine.data, needle) == []
    assert all(hits(engine.data, key) == [] for key in keys)
    assert engage("verify", "--data", str(engine.data)).returncode == 0
