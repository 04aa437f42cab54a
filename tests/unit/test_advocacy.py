"""SPEC §4 as tables: each weight, the half-life, the tier boundaries on the unrounded score."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.touchpoints import CATALOGUE
from projections.advocacy import (
    HALF_LIFE,
    Advocacy,
    advocacy,
    decayed,
    explain_advocacy,
    reported,
    score,
    tier,
    tier_changes,
    weight,
)

AS_OF = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


# --- weights: one row per line of the table ------------------------------------------------------

@pytest.mark.parametrize(("event_type", "data", "expected"), [
    ("referral.converted", {"referral": "r-1"}, 10.0),
    ("idea.status_changed", {"idea": "i-1", "status": "delivered"}, 8.0),
    ("idea.status_changed", {"idea": "i-1", "status": "under_review"}, None),
    ("idea.status_changed", {"idea": "i-1", "status": "planned"}, None),
    ("idea.status_changed", {"idea": "i-1", "status": "declined"}, None),
    ("answer.accepted", {"question": "q-1", "answer": "a-1"}, 5.0),
    ("referral.made", {"referral": "r-1"}, 3.0),
    ("review.posted", {"product": "p-1", "rating": 5}, 4.0),
    ("review.posted", {"product": "p-1", "rating": 4}, 2.0),
    ("review.posted", {"product": "p-1", "rating": 3}, 0.0),  # counted, at 0: it shows in /explain
    ("review.posted", {"product": "p-1", "rating": 2}, -2.0),
    ("review.posted", {"product": "p-1", "rating": 1}, -4.0),
    ("survey.answered", {"survey": "s-1", "nps": 10}, 5.0),
    ("survey.answered", {"survey": "s-1", "nps": 9}, 5.0),
    ("survey.answered", {"survey": "s-1", "nps": 8}, 0.0),
    ("survey.answered", {"survey": "s-1", "nps": 7}, 0.0),
    ("survey.answered", {"survey": "s-1", "nps": 6}, -5.0),
    ("survey.answered", {"survey": "s-1", "nps": 0}, -5.0),
    ("survey.answered", {"survey": "s-1", "nps": None}, 0.0),
    ("survey.answered", {"survey": "s-1"}, 0.0),  # null is normalised to omitted
    ("answer.posted", {"question": "q-1", "answer": "a-1"}, 1.0),
    ("content.shared", {"url": "https://example.org"}, 1.0),
    ("idea.submitted", {"idea": "i-1", "title": "t"}, 1.0),
])
def test_weight_of_each_line_of_the_table(event_type: str, data: dict[str, Any], expected: float | None) -> None:
    assert weight(event_type, data) == expected


def test_every_other_event_weighs_nothing() -> None:
    weighed = {"referral.converted", "idea.status_changed", "answer.accepted", "referral.made", "review.posted",
               "survey.answered", "answer.posted", "content.shared", "idea.submitted"}
    for event_type in set(CATALOGUE) - weighed:
        assert weight(event_type, {}) is None, event_type


# --- decay ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("age", "expected"), [
    (timedelta(0), 8.0),
    (HALF_LIFE, 4.0),  # exactly one half-life: exactly half
    (2 * HALF_LIFE, 2.0),  # 180 days: a quarter
    (3 * HALF_LIFE, 1.0),
    (HALF_LIFE / 2, 8.0 / math.sqrt(2)),
    (-MICRO, 0.0),  # after T: does not count yet
])
def test_decay_halves_every_90_days(age: timedelta, expected: float) -> None:
    assert decayed(8.0, AS_OF - age, AS_OF) == pytest.approx(expected, rel=1e-15)


def test_half_lives_are_exact() -> None:
    assert decayed(10.0, AS_OF - timedelta(days=90), AS_OF) == 5.0
    assert decayed(-4.0, AS_OF - timedelta(days=180), AS_OF) == -1.0


def test_score_sums_what_happened_up_to_t() -> None:
    contributions = [(AS_OF - HALF_LIFE, 10.0), (AS_OF, 3.0), (AS_OF - 2 * HALF_LIFE, -4.0), (AS_OF + MICRO, 100.0)]
    assert score(contributions, AS_OF) == 5.0 + 3.0 - 1.0
    assert score([], AS_OF) == 0.0


def test_score_does_not_depend_on_order() -> None:
    # The classic: left to right, 1e16 + 1 rounds the 1 away. fsum keeps it, in any order.
    contributions = [(AS_OF, 1e16), (AS_OF, 1.0), (AS_OF, -1e16)]
    assert score(contributions, AS_OF) == score(contributions[::-1], AS_OF) == 1.0


# --- tier and reporting ---------------------------------------------------------------------------

@pytest.mark.parametrize(("unrounded", "expected_tier", "expected_score"), [
    (25.0, "champion", 25.0),
    (20.0, "champion", 20.0),  # ≥ 20
    (19.999, "promoter", 20.0),  # reports as 20.0, and is still a promoter: the tier reads the unrounded score
    (19.9999999, "promoter", 20.0),
    (5.0, "promoter", 5.0),  # ≥ 5
    (4.999, "neutral", 5.0),
    (0.0, "neutral", 0.0),
    (-4.999, "neutral", -5.0),
    (-5.0, "detractor", -5.0),  # ≤ −5
    (-5.001, "detractor", -5.0),
    (-30.0, "detractor", -30.0),
])
def test_tier_uses_the_unrounded_score(unrounded: float, expected_tier: str, expected_score: float) -> None:
    assert tier(unrounded) == expected_tier
    assert reported(unrounded) == expected_score
    assert advocacy([(AS_OF, unrounded)], AS_OF) == Advocacy(score=expected_score, tier=expected_tier)


@pytest.mark.parametrize(("unrounded", "text"), [
    (12.345678, "12.35"),
    (-0.001, "0.0"),  # never "-0.0"
    (0.004999, "0.0"),
    (1 / 3, "0.33"),
])
def test_the_score_is_reported_to_two_decimals(unrounded: float, text: str) -> None:
    assert repr(reported(unrounded)) == text


def test_a_decayed_champion_reads_promoter_although_it_reports_20() -> None:
    # 20 a microsecond ago has decayed below 20, by far less than a rounding step.
    result = advocacy([(AS_OF - MICRO, 20.0)], AS_OF)
    assert result == Advocacy(score=20.0, tier="promoter")


# --- tier change instants -------------------------------------------------------------------------

def test_a_single_contribution_decays_through_each_tier() -> None:
    t0 = AS_OF
    # 20 holds at t0 only; it is exactly 5 two half-lives later, and a promoter up to then.
    assert tier_changes([(t0, 20.0)]) == [t0, t0 + MICRO, t0 + 2 * HALF_LIFE + MICRO]
    # −10 is exactly −5 one half-life later: still a detractor at that instant.
    assert tier_changes([(t0, -10.0)]) == [t0, t0 + HALF_LIFE + MICRO]
    assert tier(score([(t0, -10.0)], t0 + HALF_LIFE)) == "detractor"
    assert tier(score([(t0, -10.0)], t0 + HALF_LIFE + MICRO)) == "neutral"
    assert tier_changes([(t0, 3.0)]) == [t0]
    assert tier_changes([]) == []


def test_a_crossing_after_the_next_contribution_is_not_one() -> None:
    t0 = AS_OF
    # 40 would fall below 20 after a half-life, but a new contribution comes first.
    assert tier_changes([(t0, 40.0), (t0 + timedelta(days=30), 1.0)])[:2] == [t0, t0 + timedelta(days=30)]


def test_until_leaves_out_later_instants() -> None:
    assert tier_changes([(AS_OF, 20.0)], until=AS_OF + HALF_LIFE) == [AS_OF, AS_OF + MICRO]


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))
weights = st.sampled_from([10.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -2.0, -4.0, -5.0])
contribution_lists = st.lists(st.tuples(instants, weights), max_size=10)
FAR = datetime(2040, 1, 1, tzinfo=UTC)  # past every crossing: ten contributions of 10 decay below 5 well before


@settings(deadline=None)
@given(contributions=contribution_lists, data=st.data())
def test_tier_is_constant_between_change_instants(
    contributions: list[tuple[datetime, float]], data: st.DataObject
) -> None:
    changes = tier_changes(contributions)
    bounds = [datetime(2024, 1, 1, tzinfo=UTC), *changes, FAR]
    for start, end in pairwise(bounds):
        expected = tier(score(contributions, start))
        # The last microsecond of the span and one drawn inside it. No tolerance around a crossing:
        # tier_changes probes score() itself there, microsecond by microsecond, rather than trust
        # the closed form, so even a float score that flickers across θ is followed exactly.
        for moment in (end - MICRO, _between(data, start, end)):
            assert tier(score(contributions, moment)) == expected, (start, moment, end)


def _between(data: st.DataObject, start: datetime, end: datetime) -> datetime:
    return data.draw(st.datetimes(min_value=start.replace(tzinfo=None), max_value=(end - MICRO).replace(tzinfo=None),
                                  timezones=st.just(UTC)))


@settings(deadline=None)
@given(contributions=contribution_lists)
def test_each_crossing_instant_is_a_change(contributions: list[tuple[datetime, float]]) -> None:
    # Not just a safe over-approximation: the tier differs on either side of each crossing.
    moments = {at for at, _ in contributions}
    for change in tier_changes(contributions):
        if change not in moments:
            assert tier(score(contributions, change)) != tier(score(contributions, change - MICRO)), change


def test_a_float_score_flickering_across_a_threshold_is_followed() -> None:
    # Heavy cancellation: the exact score meets −5 once, but score()'s last bits put it on both
    # sides of −5 for a few microseconds. Every flip is a change, so each span holds one tier.
    day = datetime(2025, 1, 1, tzinfo=UTC)
    contributions = [(day, 10.0)] * 3 + [
        (datetime(2025, 4, 1, tzinfo=UTC), 191991.0), (datetime(2025, 6, 1, tzinfo=UTC), -928106.0),
        (datetime(2025, 9, 2, tzinfo=UTC), 999727.0), (datetime(2026, 1, 1, tzinfo=UTC), -240513.0),
    ]
    changes = tier_changes(contributions)
    last = changes[-1]
    assert tier(score(contributions, last - MICRO)) == "detractor"
    for k in range(-50, 50):
        moment = last + k * MICRO
        current = max(c for c in [datetime.min.replace(tzinfo=UTC), *changes] if c <= moment)
        assert tier(score(contributions, moment)) == tier(score(contributions, current)), moment


# --- explain ---------------------------------------------------------------------------------------

def test_explain_lists_every_contribution_with_its_decayed_value_and_the_total() -> None:
    rows = [
        (AS_OF, "e-b", "review.posted", 0.0),
        (AS_OF - HALF_LIFE, "e-z", "referral.converted", 10.0),
        (AS_OF, "e-a", "answer.posted", 1.0),
        (AS_OF + MICRO, "e-later", "referral.made", 3.0),
    ]
    assert explain_advocacy(rows, AS_OF) == [
        {"id": "e-z", "type": "referral.converted", "occurred_at": "2026-07-03T12:00:00Z", "weight": 10.0,
         "decayed": 5.0},
        {"id": "e-a", "type": "answer.posted", "occurred_at": "2026-10-01T12:00:00Z", "weight": 1.0, "decayed": 1.0},
        {"id": "e-b", "type": "review.posted", "occurred_at": "2026-10-01T12:00:00Z", "weight": 0.0, "decayed": 0.0},
        {"total": 6.0, "score": 6.0, "tier": "promoter"},
    ]


instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
weights = st.sampled_from([10.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -2.0, -4.0, -5.0])


@settings(max_examples=300)
@given(st.lists(st.tuples(instants, weights), max_size=30), instants)
def test_the_score_is_the_fsum_of_each_decayed_term_bit_for_bit(
        contributions: list[tuple[datetime, float]], as_of: datetime) -> None:
    """`score` inlines `decayed`: that may not move a last bit (a tier at a boundary is decided on
    it, and readers and spans must agree)."""
    defined = math.fsum(decayed(w, at, as_of) for at, w in contributions)
    assert score(contributions, as_of).hex() == defined.hex()
