"""Real answers of every JSON route checked against the OpenAPI document (/schema/openapi.json) by
schemathesis' response conformance: each status code documented, each body valid under its schema.
The stories cover every shape a body takes (withheld, explained, a timeline of an identity, a
case with an agent, a rated one, an erased customer, a linked identity, a member's public view)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from schemathesis.checks import response_schema_conformance, status_code_conformance

from tests.integration.engine_process import EngineProcess
from tests.samples import ev, outcome_cases

AT = "2026-10-01T12:00:00Z"
STORIES = [
    ev("s1", "purchase.completed", {"order": "o", "amount_cents": 5, "currency": "EUR"}, customer="c-a"),
    ev("s2", "referral.made", {"referral": "r"}, customer="c-a"),
    ev("s3", "preferences.stated", {"level": "collaborator"}, customer="c-a"),
    ev("s4", "consent.changed", {"purpose": "community_profile", "granted": True}, customer="c-a"),
    ev("s5", "post.published", {"thread": "t", "title": "Hello", "text": "world"}, customer="c-a"),
    ev("s6", "comment.posted", {"thread": "t", "text": "hi"}, identity={"channel": "forum", "handle": "Bea"}),
    ev("s7", "consent.changed", {"purpose": "profiling", "granted": False}, customer="c-w"),
    ev("s8", "idea.voted", {"idea": "i"}, customer="c-w"),
    ev("s9", "case.opened", {"case": "k-a", "priority": "urgent", "subject": "Broken"}, customer="c-a"),
    ev("s10", "case.assigned", {"case": "k-a", "agent": "ann", "team": "t1"}, customer="c-a"),
    ev("s11", "case.agent_replied", {"case": "k-a", "agent": "ann"}, customer="c-a"),
    ev("s12", "case.solved", {"case": "k-a"}, customer="c-a"),
    ev("s13", "case.rated", {"case": "k-a", "rating": "good"}, customer="c-a"),
    ev("s14", "comment.posted", {"thread": "t", "text": "yo"}, identity={"channel": "twitter", "handle": "cy"}),
    ev("s15", "identity.linked", {"channel": "twitter", "handle": "cy"}, customer="c-a"),
    ev("s16", "idea.voted", {"idea": "i"}, customer="c-e"),
    ev("s17", "case.opened", {"case": "k-e"}, customer="c-e"),
    ev("s18", "customer.erased", customer="c-e"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("answers") / "data").start()
    try:
        yield eng
    finally:
        eng.kill()


@pytest.fixture(scope="module")
def api(engine: EngineProcess) -> Any:
    return schemathesis.openapi.from_url(engine.http + "/schema/openapi.json")


def conforms(api: Any, engine: EngineProcess, method: str, template: str, rest: str | None = None,
             query: dict[str, str] | None = None, *, sent: httpx.Response | None = None) -> int:
    """Call the route (or take the answer `sent` to it) and check the answer against the document."""
    operation = api[template][method]
    case = operation.Case(path_parameters={} if rest is None else {"rest": rest}, query=query or {})
    response = sent if sent is not None else case.call(base_url=engine.http, timeout=30)
    case.validate_response(response, checks=[response_schema_conformance, status_code_conformance])
    return int(response.status_code)


def test_every_answer_is_what_the_document_says(api: Any, engine: EngineProcess) -> None:
    # schemathesis cannot send NDJSON, and the body holds bytes that are no JSON at all: sent as is.
    posted = httpx.post(engine.http + "/events", content=b"\n".join([*(raw for raw, _ in outcome_cases()), *STORIES]),
                        headers={"content-type": "application/x-ndjson"}, timeout=30)
    assert conforms(api, engine, "POST", "/events", sent=posted) == 200 and posted.json()["rejected"], posted.text
    deadline = time.time() + 30
    while engine.get("/health").json()["projections"]["read-models"]["lag"] > 0:
        assert time.time() < deadline
        time.sleep(0.05)
    seen: set[int] = set()
    for method, template, rest, query in [
        ("GET", "/health", None, None), ("GET", "/stats", None, None), ("GET", "/stats", None, {"as_of": AT}),
        ("GET", "/audit/verify", None, None), ("GET", "/rejects", None, {"limit": "2"}),
        ("GET", "/customers", None, None), ("GET", "/customers", None, {"level": "withheld"}),
        ("GET", "/customers", None, {"limit": "1"}),
        ("GET", "/customers/{rest}", "c-a", None), ("GET", "/customers/{rest}", "c-w", None),
        ("GET", "/customers/{rest}", "c-a/explain", None), ("GET", "/customers/{rest}", "c-w/explain", None),
        ("GET", "/customers/{rest}", "c-a/timeline", {"limit": "3"}),
        ("GET", "/customers/{rest}", quote("~forum:bea", safe=""), None),
        ("GET", "/customers/{rest}", quote("~forum:bea", safe="") + "/timeline", None),
        ("GET", "/customers/{rest}", quote("~twitter:cy", safe=""), None),  # 404 linked
        ("GET", "/customers/{rest}", "c-e", None),  # 404 erased
        ("GET", "/customers/{rest}", "nobody", None),  # 404 not_found
        ("GET", "/cases", None, None), ("GET", "/cases", None, {"breached": "true"}),
        ("GET", "/cases/{rest}", "k-a", None), ("GET", "/cases/{rest}", "k-e", None),
        ("GET", "/cases/{rest}", "nope", None),
        ("GET", "/community/{rest}", "c-a", None), ("GET", "/community/{rest}", "c-w", None),
        ("GET", "/customers", None, {"limit": "0"}),  # 400
    ]:
        seen.add(conforms(api, engine, method, template, rest, query))
    assert seen == {200, 400, 404}
    withheld = engine.get("/customers/c-w").json()
    assert withheld["engagement"] == withheld["advocacy"] == {"withheld": "consent"}
    assert engine.get("/cases/k-e").json()["customer"] is None
    assert engine.get("/cases/k-a").json()["rating"] == "good"
