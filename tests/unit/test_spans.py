"""Spans at the edge of the calendar: a change at its very first instant (0001-01-01T00:00:00Z, the
zero time some producers send) leaves no empty span before it (two spans starting at the same
instant broke the read models' primary key and stopped the runner for good)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from projections.engagement import WINDOW
from projections.spans import History, advocacy_spans, engagement_spans
from projections.store import BEGINNING, END, sortable

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
