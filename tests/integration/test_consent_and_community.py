"""Consent (issue 6): marketing on the profile and as a /customers filter; translucence: the
public /community view exists only while the member grants it, and never shows more than it may."""
from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.integration.engine_process import EngineProcess
from tests.samples import ev


def t(day: int) -> str:
    return f"2026-10-{day:02d}T12:00:00Z"


def consent(i: str, purpose: str, granted: bool, day: int, **who: str) -> bytes:
    return ev(i, "consent.changed", {"purpose": purpose, "granted": granted}, at=t(day), **who)


STORY = [
    ev("a1", "customer.registered", {"name": "Ada Secretname", "email": "ada@example.org"}, at=t(1)),
    consent("a2", "community_profile", True, 2),
    consent("a3", "marketing", True, 2),
    ev("a4", "post.published", {"thread": "t", "title": "Hello", "text": "private words"}, at=t(3)),
    ev("a5", "answer.posted", {"question": "q", "answer": "x", "text": "more words"}, at=t(4)),
    ev("a6", "answer.accepted", {"question": "q", "answer": "x"}, at=t(5)),
    ev("a7", "idea.submitted", {"idea": "i", "title": "Idea"}, at=t(6)),
    ev("a8", "idea.submitted", {"idea": "i2", "title": "Idea 2"}, at=t(6)),
    ev("a9", "identity.linked", {"channel": "twitter", "handle": "ada"}, at=t(6)),
    ev("a9b", "reaction.added", {"target": "p", "kind": "like"}, identity={"channel": "twitter", "handle": "@Ada"},
       at=t(6)),
    ev("a10", "case.opened", {"case": "k-1", "subject": "broken"}, at=t(7)),
    ev("a11", "case.note_added", {"case": "k-1", "agent": "a", "text": "INTERNAL NOTE"}, at=t(7)),
    ev("a12", "review.posted", {"product": "p", "rating": 5}, at=t(8)),
    # c-2 grants, then withdraws both; c-3 never says; c-4 grants and is erased.
    consent("b1", "community_profile", True, 2, customer="c-2"),
    consent("b2", "marketing", True, 2, customer="c-2"),
    consent("b3", "community_profile", False, 9, customer="c-2"),
    consent("b4", "marketing", False, 9, customer="c-2"),
    ev("c1", "purchase.completed", {"order": "o", "amount_cents": 1, "currency": "EUR"}, at=t(2), customer="c-3"),
    consent("d1", "community_profile", True, 2, customer="c-4"),
    ev("d2", "customer.erased", at=t(3), customer="c-4"),
    # c-5 withholds profiling but shares its community profile: no level is inferred.
    consent("e1", "community_profile", True, 2, customer="c-5"),
    consent("e2", "profiling", False, 2, customer="c-5"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("consent") / "data").start()
    try:
        eng.send(*STORY)
        eng.caught_up()
        yield eng
    finally:
        eng.kill()


def test_the_profile_shows_each_purposes_consent_as_of_t(engine: EngineProcess) -> None:
    assert engine.get("/customers/c-1", as_of=t(10)).json()["consent"] == {
        "profiling": None, "marketing": True, "community_profile": True}
    assert engine.get("/customers/c-2", as_of=t(5)).json()["consent"]["marketing"] is True
    assert engine.get("/customers/c-2", as_of=t(10)).json()["consent"]["marketing"] is False
    assert engine.get("/customers/c-1", as_of=t(1)).json()["consent"]["marketing"] is None


def test_customers_filter_by_marketing_consent_as_of_t(engine: EngineProcess) -> None:
    def keys(**params: str) -> list[str]:
        return [item["customer"] for item in engine.get("/customers", **params).json()["items"]]

    assert keys(marketing="granted", as_of=t(10)) == ["c-1"]
    assert keys(marketing="granted", as_of=t(5)) == ["c-1", "c-2"]
    assert keys(marketing="not_granted", as_of=t(10)) == ["c-2", "c-3", "c-5"]
    assert keys(marketing="granted", as_of=t(1)) == []
    bad = engine.get("/customers", marketing="yes")
    assert bad.status_code == 400 and bad.json()["parameter"] == "marketing"


def test_community_view_shows_only_public_things(engine: EngineProcess) -> None:
    view = engine.get("/community/c-1", as_of=t(10)).json()
    assert view == {
        "member": "c-1",
        "identities": [{"channel": "twitter", "handle": "ada"}],
        "level": engine.get("/customers/c-1", as_of=t(10)).json()["engagement"]["level"],
        "contributions": {"posts": 1, "answers": 1, "accepted_answers": 1, "ideas": 2},
        "as_of": "2026-10-10T12:00:00Z",
    }
    body = engine.get("/community/c-1", as_of=t(10)).text
    for secret in ("Secretname", "ada@example.org", "private words", "INTERNAL NOTE", "broken", "score", "case"):
        assert secret not in body


def test_without_a_grant_the_community_view_is_exactly_an_unknown_key(engine: EngineProcess) -> None:
    unknown = engine.get("/community/nobody")
    assert unknown.status_code == 404
    for key, when in (("c-2", t(10)), ("c-3", t(10)), ("c-4", t(10)), ("c-1", t(1)), ("~twitter:ada", t(10))):
        answer = engine.get("/community/" + quote(key, safe=""), as_of=when)
        assert (answer.status_code, answer.content) == (unknown.status_code, unknown.content), key
    assert engine.get("/community/c-2", as_of=t(5)).status_code == 200  # granted then


def test_withheld_profiling_hides_the_level_in_the_community_view(engine: EngineProcess) -> None:
    view = engine.get("/community/c-5", as_of=t(10)).json()
    assert view["level"] is None and view["contributions"] == {"posts": 0, "answers": 0, "accepted_answers": 0,
                                                                "ideas": 0}


def test_community_parameters_are_checked(engine: EngineProcess) -> None:
    answer = engine.get("/community/c-1", limit="5")
    assert answer.status_code == 400 and answer.json()["parameter"] == "limit"
