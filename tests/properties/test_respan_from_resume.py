"""A respan from a Resume (the fold's state after a profile's last event) gives the spans that a
respan of the whole history gives, and the same Resume, for any history cut anywhere into chunks of
later events: the projection runner respans a profile that way when its new events sort after its
history (projections/spans.py). Spans before the cut are kept, those from it on are the tail's, and
two spans that meet at the cut with the same value become one."""
from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.spans import Contributions, History, Respanned, Row, respan, sort_key
from projections.store import END, sortable

START = datetime(2026, 1, 1, tzinfo=UTC)
# Two years of instants, in clusters (a window's worth of events, then a gap), and ties.
instants = st.one_of(
    st.just(START),
    st.integers(0, 730).map(lambda day: START + timedelta(days=day)),
    st.integers(0, 730 * 86_400 * 1_000_000).map(lambda micros: START + timedelta(microseconds=micros)),
)
weights = st.one_of(st.sampled_from([10.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -2.0, -4.0, -5.0]),
                    st.floats(min_value=-60, max_value=60, allow_nan=False))
kinds = st.one_of(
    st.tuples(st.just("purchase.completed"), st.integers(1, 5), st.none(), st.none()),
    st.tuples(st.just("review.posted"), st.integers(1, 5), weights, st.none()),
    st.tuples(st.just("referral.made"), st.none(), weights, st.none()),
    st.tuples(st.just("preferences.stated"), st.none(), st.none(),
              st.sampled_from(["", "participant", "advocate", "transactional"])),
    st.tuples(st.just("consent.changed"), st.none(), st.none(),
              st.sampled_from(["profiling:granted", "profiling:withdrawn", "marketing:withdrawn"])),
    st.tuples(st.just("support.contacted"), st.none(), st.none(), st.none()),
)


@st.composite
def histories(draw: Any) -> tuple[list[Row], list[int]]:
    """A profile's rows in sort order, and the indexes at which later chunks begin."""
    events = draw(st.lists(st.tuples(instants, kinds), min_size=1, max_size=25))
    rows: list[Row] = sorted((sortable(at), f"e{k:03d}", kind, rung, w, detail)
                             for k, (at, (kind, rung, w, detail)) in enumerate(events))
    cuts = draw(st.lists(st.integers(1, len(rows) - 1), max_size=4, unique=True)) if len(rows) > 1 else []
    return rows, sorted(cuts)


def loader(contributions: Contributions) -> Callable[[], Contributions]:
    return lambda: contributions


def last_key(rows: list[Row]) -> str:
    return sort_key(rows[-1][0], rows[-1][1])


def splice(kept: list[tuple[Any, ...]], tail: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """What the runner does with the spans in the read models (projections/projector.py)."""
    cut = tail[0][0]
    before = [span for span in kept if span[0] < cut]
    if before and before[-1][2:] == tail[0][2:]:
        return [*before[:-1], (before[-1][0], tail[0][1], *tail[0][2:]), *tail[1:]]
    if before:
        before[-1] = (before[-1][0], cut, *before[-1][2:])
    return [*before, *tail]


@settings(max_examples=400, deadline=None)
@given(history=histories())
def test_a_respan_from_a_resume_equals_a_respan_of_the_whole_history(history: tuple[list[Row], list[int]]) -> None:
    rows, cuts = history
    whole = respan(History.from_rows(rows), last_key(rows))
    bounds = [*cuts, len(rows)]
    spanned: Respanned = respan(History.from_rows(rows[:bounds[0]]), last_key(rows[:bounds[0]]))
    for start, end in itertools.pairwise(bounds):
        since = sort_key(rows[start][0], rows[start][1])
        # What the sweep reads for a profile with a Resume: its events from the cut's instant on,
        # and, when a tier decision is within rounding of a threshold, its contributions before.
        seen = [row for row in rows[:end] if row[0] >= rows[start][0]]
        earlier = History.from_rows(rows[:start]).contributions
        tail = respan(History.from_rows(seen, since, loader(earlier)), last_key(rows[:end]), spanned.resume, since)
        assert tail.engagement[0][0] == tail.advocacy[0][0] == rows[start][0]  # both start at the cut
        spanned = Respanned(splice(spanned.engagement, tail.engagement), splice(spanned.advocacy, tail.advocacy),
                            tail.resume)
    assert spanned == whole


def test_a_later_event_is_spanned_from_the_latest_two_of_each_rung() -> None:
    """Purchases and reviews every 10 days for two years, then one more purchase: the respan
    reads only the new event, and the Resume keeps the latest two purchases and reviews, which
    decide every later level (a level needs one or two events at or above its rung)."""
    rows: list[Row] = [(sortable(START + timedelta(days=10 * k)), f"p{k:02d}",
                        *(("purchase.completed", 1) if k % 2 else ("review.posted", 3)), None, None)
                       for k in range(73)]
    old, new = rows[:-1], rows[-1:]
    since = sort_key(new[0][0], new[0][1])
    before = respan(History.from_rows(old), last_key(old))
    assert [rank for _, rank in before.resume.recent] == [3, 1, 3, 1]  # days 680, 690, 700, 710
    tail = respan(History.from_rows(new, since, loader([])), last_key(rows), before.resume, since)
    whole = respan(History.from_rows(rows), last_key(rows))
    assert tail.resume == whole.resume
    assert splice(before.engagement, tail.engagement) == whole.engagement
    # Contributor from the second review (day 20) on, while two reviews are in the window, until
    # day 700's leaves it; then the review of day 720 alone is transactional, until it leaves too.
    day = [sortable(START + timedelta(days=n)) for n in (20, 790, 810)]
    assert [span[:3] for span in whole.engagement[-3:]] == [
        (day[0], day[1], "contributor"), (day[1], day[2], "transactional"), (day[2], END, "inactive")]
