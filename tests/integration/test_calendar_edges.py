"""The calendar's edges over the real HTTP API: events at its first instant (the zero time of Go
and .NET, which producers do send) are folded like any other, and an `as_of` the engine cannot
answer for is a 400 naming it, not a 500."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.engine_process import EngineProcess
from tests.samples import ev

EARLIEST, LATEST = "0001-04-01T00:00:00Z", "9999-12-31T23:59:59.999998Z"
STORY = [
    ev("z1", "purchase.completed", {"order": "o-1", "amount_cents": 1, "currency": "EUR"}, customer="c-zero",
       at="0001-01-01T00:00:00Z"),
    ev("z2", "review.posted", {"product": "p", "rating": 5}, customer="c-zero", at="0001-01-01T00:00:00Z"),
    ev("z3", "purchase.completed", {"order": "o-2", "amount_cents": 1, "currency": "EUR"}, customer="c-zero",
       at="0001-01-02T00:00:00Z"),
    ev("z4", "case.opened", {"case": "k-zero"}, customer="c-zero", at="0001-01-01T00:00:00Z"),
    ev("n1", "idea.voted", {"idea": "i"}, customer="c-now", at="2026-10-01T00:00:00Z"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("calendar") / "data").start()
    try:
        eng.send(*STORY)
        eng.caught_up()  # with no error: events at the first instant are folded
        yield eng
    finally:
        eng.kill()


def test_events_at_the_first_instant_are_folded(engine: EngineProcess) -> None:
    profile = engine.get("/customers/c-zero", as_of=EARLIEST).json()
    # the window (T − 90 days, T] leaves out what happened at 0001-01-01T00:00:00Z exactly
    assert profile["engagement"] == {"level": "transactional", "observed": "transactional", "stated": None}
    assert profile["last_seen"] == "0001-01-02T00:00:00Z"
    assert profile["cases"] == {"open": 1, "total": 1}
    stats = engine.get("/stats", as_of=EARLIEST).json()
    assert stats["engagement"] == {"transactional": 1, "inactive": 1}
    tiers = Counter(engine.get(f"/customers/{key}", as_of=EARLIEST).json()["advocacy"]["tier"]
                    for key in ("c-zero", "c-now"))
    assert stats["advocacy"] == dict(tiers)
    assert [item["customer"] for item in engine.get("/customers", level="transactional", as_of=EARLIEST).json()[
        "items"]] == ["c-zero"]
    explained = engine.get("/customers/c-zero/explain", as_of=EARLIEST)
    assert explained.status_code == 200, explained.text
    assert engine.get("/cases/k-zero").json()["opened_at"] == "0001-01-01T00:00:00Z"


def test_the_last_instant_answered_counts_every_profile(engine: EngineProcess) -> None:
    stats = engine.get("/stats", as_of=LATEST).json()
    assert stats["profiles"] == 2
    assert sum(stats["engagement"].values()) == sum(stats["advocacy"].values()) == 2


@pytest.mark.parametrize("as_of", [
    "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
    "0001-03-31T23:59:59.999999Z",  # its 90-day window would start before the calendar
    "9999-12-31T23:59:59.999999Z",  # where every span ends
])
@pytest.mark.parametrize("path", ["/customers/c-zero", "/customers/c-zero/explain", "/customers/c-zero/timeline",
                                  "/customers", "/cases/k-zero", "/cases", "/stats", "/"])
def test_an_as_of_outside_the_calendar_answered_is_a_bad_parameter(engine: EngineProcess, path: str,
                                                                   as_of: str) -> None:
    answer = engine.get(path, as_of=as_of)
    assert answer.status_code == 400, (path, as_of, answer.text)
    if path != "/":
        assert answer.json()["parameter"] == "as_of"
    assert EARLIEST in answer.text and LATEST in answer.text


@pytest.mark.parametrize("as_of", ["20261120T120000Z", "2026-W47-5T12:00:00Z", "2026-11-20T12Z", "2026-11-20T12:00Z",
                                   "2026-11-20T12:00:00.Z", "2026-11-20T12:00:00.9999999Z", "2026-02-30T12:00:00Z"])
def test_an_as_of_that_is_not_rfc_3339_is_a_bad_parameter(engine: EngineProcess, as_of: str) -> None:
    """Python's own parser takes ISO 8601's other forms; the contract says RFC 3339, as for
    occurred_at (up to microseconds)."""
    answer = engine.get("/stats", as_of=as_of)
    assert answer.status_code == 400 and answer.json()["parameter"] == "as_of", answer.text


def test_a_plus_left_unencoded_in_as_of_is_named(engine: EngineProcess) -> None:
    answer = httpx.get(engine.http + "/stats?as_of=2026-10-01T12:00:00+01:00")
    assert answer.status_code == 400 and "%2B" in answer.json()["detail"], answer.text
    assert engine.get("/stats", as_of="2026-10-01T12:00:00+01:00").status_code == 200  # encoded, as httpx does
