"""Sample touchpoints for tests, shaped like the contract's."""
from __future__ import annotations

import json
from typing import Any

AT = "2026-10-01T12:00:00Z"


def event(i: int | str, typ: str, data: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"id": f"e-{i}", "type": typ, "occurred_at": kw.pop("at", AT), "source": "test",
                         "channel": kw.pop("channel", "web")}
    if "identity" in kw:
        e["identity"] = kw.pop("identity")
    else:
        e["customer"] = kw.pop("customer", "c-1")
    if data is not None:
        e["data"] = data
    assert not kw, kw
    return e


def ev(i: int | str, typ: str, data: dict[str, Any] | None = None, **kw: Any) -> bytes:
    return json.dumps(event(i, typ, data, **kw)).encode()


def outcome_cases() -> list[tuple[bytes, str]]:
    """Every outcome of SPEC §2, in an order where each case means what it says."""
    vote = {"idea": "i-1"}
    good = [
        ev(1, "customer.registered", {"name": "Ada", "email": "ada@example.org"}),
        ev(2, "purchase.completed", {"order": "o-1", "amount_cents": 1999, "currency": "EUR"}),
        ev(3, "comment.posted", {"thread": "t-1", "text": "hi"}, identity={"channel": "Twitter", "handle": "@Alice"}),
        ev(4, "case.opened", {"case": "k-1", "priority": "high"}),
        ev(5, "case.solved", {"case": "k-1"}),
        ev(6, "case.closed", {"case": "k-1"}),
        ev(7, "customer.erased", customer="c-gone"),
    ]
    return [(raw, "accepted") for raw in good] + [
        (ev(1, "customer.registered", {"name": "Ada", "email": "ada@example.org"}), "duplicate"),
        (ev(3, "comment.posted", {"thread": "t-1", "text": "hi"}, identity={"channel": "twitter", "handle": "alice"}),
         "duplicate"),
        (ev(2, "purchase.completed", {"order": "o-1", "amount_cents": 2999, "currency": "EUR"}), "duplicate_conflict"),
        (ev(20, "review.posted", {"product": "p", "rating": 6}), "schema"),
        (ev(21, "idea.voted", {**vote, "extra": 1}), "schema"),
        (ev(22, "comment.posted", {"thread": "t"}, identity={"channel": "twitter", "handle": "@"}), "schema"),
        (ev(23, "nonsense.happened", {}), "unknown_type"),
        (ev(24, "idea.voted", vote, at="2099-01-01T00:00:00Z"), "future_timestamp"),
        (ev(25, "case.assigned", {"case": "k-404", "agent": "a"}), "unknown_case"),
        (ev(26, "case.opened", {"case": "k-1"}), "case_exists"),
        (ev(27, "case.reopened", {"case": "k-1"}), "invalid_transition"),
        (ev(28, "idea.voted", vote, customer="c-gone"), "erased"),
        (ev(29, "comment.posted", {"thread": "t", "text": "x" * 70_000}), "too_large"),
        (b"[1, 2, 3]", "malformed"),
        (b"\xff\xfe not json", "malformed"),
    ]
