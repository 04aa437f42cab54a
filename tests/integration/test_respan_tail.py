"""A profile's new events that sort after its history are respanned from its Resume: the sweep
reads the new events only, not the history (a profile with 37,600 events kept the live runner busy
on a whole core at 10 events/s), and the read models come out as a fold of the whole log in one
pass gives them. An event that sorts into the past, or a link, still respans the whole history."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.log import Log
from engine.received import Received
from projections import spans, sweep
from projections.projector import Projector
from tests.integration.test_projections import dump
from tests.samples import ev

T0 = datetime(2022, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 10, 2, tzinfo=UTC)
HISTORY = 400  # events of c-heavy, one every 4 days: about four years and a half


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def touchpoint(k: int, moment: datetime, customer: str = "c-heavy") -> bytes:
    """A mix that moves every fold: rungs, contributions of both signs, statements, consent."""
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("purchase.completed", {"order": f"o-{k}", "amount_cents": 100, "currency": "EUR"}),
        ("review.posted", {"product": "p", "rating": 1 + k % 5, "text": "t"}),
        ("referral.made", {"referral": f"r-{k}"}),
        ("idea.voted", {"idea": f"i-{k}"}),
        ("preferences.stated", {"level": "participant" if k % 2 else None}),
        ("consent.changed", {"purpose": "profiling", "granted": k % 3 != 0}),
        ("answer.accepted", {"question": f"q-{k}", "answer": f"a-{k}"}),
    ]
    kind, data = kinds[k % len(kinds)]
    return ev(f"{customer}-{k}", kind, data, customer=customer, at=at(moment))


@pytest.fixture
def read_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many event rows each profile's respan was given (a spy on spans.History.from_rows)."""
    given: list[int] = []
    whole = spans.History.from_rows

    def counting(rows: Iterable[spans.Row], since: str | None = None,
                 earlier: Callable[[], spans.Contributions] | None = None) -> spans.History:
        rows = list(rows)
        given.append(len(rows))
        return whole(rows, since, earlier)

    monkeypatch.setattr(spans.History, "from_rows", counting)
    return given


def commit(log: Log, raws: list[bytes]) -> None:
    outcomes = log.commit([Received(raw, "test", NOW) for raw in raws])
    assert {type(outcome).__name__ for outcome in outcomes} == {"Accepted"}, outcomes


def one_pass(log: Log, into: Path) -> Path:
    projector = Projector(into)
    projector.apply(log.records(0, 100_000))
    projector.close()
    return into


@pytest.mark.parametrize("every", [timedelta(days=4), timedelta(minutes=1)],
                         ids=["years-of-history", "all-of-it-in-the-window"])
def test_new_events_of_a_long_history_are_respanned_from_its_resume(tmp_path: Path, read_rows: list[int],
                                                                    every: timedelta) -> None:
    """Four and a half years of history, or (what a soak test ran) all of it in the last 90 days."""
    log = Log(tmp_path / "log.sqlite")
    commit(log, [touchpoint(k, T0 + every * k) for k in range(HISTORY)])
    live = Projector(tmp_path / "live.sqlite")
    live.apply(log.records(0, 100_000))
    assert read_rows == [HISTORY]  # the first sweep: the whole history
    end = T0 + every * HISTORY

    # Three pages of later events, one to three each, each page swept as the runner does live.
    for page, count in enumerate((1, 3, 2)):
        read_rows.clear()
        head = log.head.position
        commit(log, [touchpoint(1000 + 10 * page + k, end + timedelta(days=page, hours=k)) for k in range(count)])
        live.apply(log.records(head, 100))
        assert read_rows == [count]  # the new events alone
        assert dump(tmp_path / "live.sqlite") == dump(one_pass(log, tmp_path / f"whole-{page}.sqlite"))

    # An event that sorts into the past (a late delivery of last year's review): the whole history.
    read_rows.clear()
    head = log.head.position
    commit(log, [touchpoint(2001, end - timedelta(days=365))])
    live.apply(log.records(head, 100))
    assert read_rows == [HISTORY + 6 + 1]
    assert dump(tmp_path / "live.sqlite") == dump(one_pass(log, tmp_path / "whole-late.sqlite"))

    # And later events again: from the Resume that respan left.
    read_rows.clear()
    head = log.head.position
    commit(log, [touchpoint(3000, end + timedelta(days=30))])
    live.apply(log.records(head, 100))
    assert read_rows == [1]
    assert dump(tmp_path / "live.sqlite") == dump(one_pass(log, tmp_path / "whole-again.sqlite"))
    live.close()
    log.close()


def test_a_linked_identity_respans_its_customer_whole(tmp_path: Path, read_rows: list[int]) -> None:
    """A link brings an identity's events into the customer's history wherever they sort."""
    log = Log(tmp_path / "log.sqlite")
    commit(log, [touchpoint(k, T0 + timedelta(days=4 * k)) for k in range(50)]
           + [ev("tw-1", "comment.posted", {"thread": "t", "text": "hi"},
                 identity={"channel": "twitter", "handle": "heavy"}, at=at(T0 + timedelta(days=7)))])
    live = Projector(tmp_path / "live.sqlite")
    live.apply(log.records(0, 1000))
    read_rows.clear()
    head = log.head.position
    commit(log, [ev("link-1", "identity.linked", {"channel": "twitter", "handle": "heavy"}, customer="c-heavy",
                    at=at(T0 + timedelta(days=400)))])
    live.apply(log.records(head, 100))
    assert read_rows == [50 + 1 + 1]  # its 50, the identity's comment, the link
    assert dump(tmp_path / "live.sqlite") == dump(one_pass(log, tmp_path / "whole.sqlite"))
    live.close()
    log.close()


@pytest.mark.parametrize("kept_from", [0, 10**9], ids=["contributions-kept", "none-kept"])
def test_a_heavy_profiles_contributions_kept_between_sweeps_spare_reading_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept_from: int) -> None:
    """A tier decision within rounding of a threshold sums score() over all of a profile's
    contributions: the runner keeps a heavy profile's between sweeps instead of reading them again,
    and the read models are the same either way."""
    monkeypatch.setattr(sweep, "KEPT_FROM", kept_from)
    reads: list[str] = []
    load = sweep._Earlier._load

    def reading(self: Any) -> spans.Contributions:
        reads.append(self._profile)
        return load(self)

    monkeypatch.setattr(sweep._Earlier, "_load", reading)
    log = Log(tmp_path / "log.sqlite")
    commit(log, [touchpoint(k, T0 + timedelta(minutes=k)) for k in range(HISTORY)])
    live = Projector(tmp_path / "live.sqlite")
    live.apply(log.records(0, 100_000))
    end = T0 + timedelta(minutes=HISTORY)
    for page in range(40):
        head = log.head.position
        commit(log, [touchpoint(5000 + 10 * page + k, end + timedelta(minutes=3 * page + k)) for k in range(3)])
        live.apply(log.records(head, 100))
    assert dump(tmp_path / "live.sqlite") == dump(one_pass(log, tmp_path / "whole.sqlite"))
    live.close()
    log.close()
    if kept_from:
        assert reads, "no page needed the contributions before it: the test shows nothing"
    else:
        assert reads == []
