"""Spans at the edge of the calendar: a change at its very first instant (0001-01-01T00:00:00Z, the
zero time some producers send) leaves no empty span before it (two spans starting at the same
instant broke the read models' primary key and stopped the runner for good)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.advocacy import score, tier, tier_changes
from projections.engagement import WINDOW
from projections.spans import History, advocacy_spans, engagement_spans
from projections.store import BEGINNING, END, instant, sortable

FIRST = datetime.min.replace(tzinfo=UTC)


def test_an_event_at_the_first_instant_starts_the_first_engagement_span() -> None:
    spans = engagement_spans(History(rungs=[(FIRST, 1)], statements=[], consents=[], contributions=[]))
    assert spans == [(BEGINNING, sortable(FIRST + WINDOW), "transactional", "transactional", None),
                     (sortable(FIRST + WINDOW), END, "inactive", "inactive", None)]


def test_a_contribution_at_the_first_instant_starts_the_first_advocacy_span() -> None:
    spans = advocacy_spans(History(rungs=[], statements=[], consents=[], contributions=[(FIRST, 10.0)]))
    assert [span[2] for span in spans] == ["promoter", "neutral"]
    assert spans[0][0] == BEGINNING and spans[-1][1] == END
    # 10 decays to the promoter threshold 5 after one half-life, 90 days; the next microsecond is below
    assert spans[0][1] == spans[1][0] == sortable(FIRST + timedelta(days=90, microseconds=1))


def test_a_later_first_change_keeps_the_span_before_it() -> None:
    second = FIRST + timedelta(microseconds=1)
    spans = engagement_spans(History(rungs=[(second, 1)], statements=[], consents=[], contributions=[]))
    assert [(span[0], span[2]) for span in spans][:2] == [(BEGINNING, "inactive"), (sortable(second), "transactional")]


def tier_in_spans(spans: list[tuple[str, str, str]], at: datetime) -> str:
    key = sortable(at)
    return next(value for start, end, value in spans if start <= key < end)


def advocacy_history(contributions: list[tuple[datetime, float]]) -> History:
    return History(rungs=[], statements=[], consents=[], contributions=sorted(contributions, key=lambda c: c[0]))


def test_a_tier_changes_at_the_first_microsecond_past_the_crossing_not_the_nearest() -> None:
    """8 decays to 5 at 90 days·log2(1.6) = 5,272,687.134155871 s after it: the score is under 5
    from .134156 on. The instant used to be rounded to the nearest microsecond, then moved one on:
    .134157, so lists and /stats said promoter for a microsecond in which the profile said neutral."""
    delivered = datetime(2026, 2, 1, tzinfo=UTC)
    spans = advocacy_spans(advocacy_history([(delivered, 8.0)]))
    last_promoter = datetime(2026, 4, 3, 0, 38, 7, 134155, tzinfo=UTC)
    first_neutral = last_promoter + timedelta(microseconds=1)
    assert tier(score([(delivered, 8.0)], last_promoter)) == "promoter"
    assert tier(score([(delivered, 8.0)], first_neutral)) == "neutral"
    assert tier_in_spans(spans, last_promoter) == "promoter"
    assert tier_in_spans(spans, first_neutral) == "neutral"


# Weights of the catalogue and scaled ones whose crossings fall anywhere inside a microsecond; a
# year of instants, and ties.
START = datetime(2026, 1, 1, tzinfo=UTC)
instants = st.one_of(st.just(START), st.integers(0, 365 * 86_400 * 1_000_000).map(
    lambda micros: START + timedelta(microseconds=micros)))
weights = st.one_of(st.sampled_from([10.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0, -2.0, -4.0, -5.0]),
                    st.floats(min_value=-60, max_value=60, allow_nan=False))


@settings(max_examples=300)
@given(contributions=st.lists(st.tuples(instants, weights), min_size=1, max_size=12))
def test_advocacy_spans_answer_what_the_fold_answers_at_every_change(contributions: list[tuple[datetime, float]]
                                                                     ) -> None:
    """A span's tier is tier(score(…, T)) for every T in it, checked where it could go wrong: at each
    boundary, the microsecond before it, and at every instant at which the fold itself flips."""
    spans = advocacy_spans(advocacy_history(contributions))
    boundaries = [instant(start) for start, _, _ in spans[1:]]
    probes = {moment for boundary in boundaries for moment in (boundary, boundary - timedelta(microseconds=1))}
    probes |= set(tier_changes(contributions))
    probes |= {flip - timedelta(microseconds=1) for flip in tier_changes(contributions)}
    for at in sorted(probes):
        assert tier_in_spans(spans, at) == tier(score(contributions, at)), at
