"""SPEC §3 as tables: the ladder's thresholds, the 90-day window's edges, stated over observed, consent."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.touchpoints import CATALOGUE
from projections.engagement import (
    LADDER,
    RANK,
    THRESHOLDS,
    WINDOW,
    Engagement,
    Stated,
    consent_granted,
    engagement,
    explain_engagement,
    observed,
    observed_changes,
    rung_of,
    stated,
)

AS_OF = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MICRO = timedelta(microseconds=1)


def at(days_ago: float) -> datetime:
    return AS_OF - timedelta(days=days_ago)


def test_the_ladder_and_its_thresholds_are_the_contract_s() -> None:
    assert LADDER == ("inactive", "transactional", "participant", "contributor", "collaborator", "advocate")
    assert RANK == {"inactive": 0, "transactional": 1, "participant": 2, "contributor": 3, "collaborator": 4,
                    "advocate": 5}
    assert THRESHOLDS == {"transactional": 1, "participant": 2, "contributor": 2, "collaborator": 2, "advocate": 2}
    assert timedelta(days=90) == WINDOW


@pytest.mark.parametrize(("event_type", "rung"), [
    ("purchase.completed", "transactional"),
    ("case.opened", "transactional"),
    ("case.customer_replied", "transactional"),
    ("reaction.added", "participant"),
    ("idea.voted", "participant"),
    ("survey.answered", "participant"),
    ("event.attended", "participant"),
    ("case.rated", "participant"),
    ("mention.observed", "contributor"),
    ("post.published", "contributor"),
    ("comment.posted", "contributor"),
    ("question.asked", "contributor"),
    ("review.posted", "contributor"),
    ("idea.submitted", "contributor"),
    ("answer.posted", "collaborator"),
    ("answer.accepted", "collaborator"),
    ("content.shared", "advocate"),
    ("referral.made", "advocate"),
    ("referral.converted", "advocate"),
])
def test_rung_of_each_event_with_a_rung(event_type: str, rung: str) -> None:
    assert rung_of(event_type) == rung


def test_every_other_event_counts_toward_no_rung() -> None:
    rungless = {"customer.registered", "identity.linked", "customer.erased", "preferences.stated",
                "consent.changed", "idea.status_changed", "case.assigned", "case.agent_replied",
                "case.note_added", "case.put_on_hold", "case.escalated", "case.solved", "case.reopened",
                "case.closed"}
    assert rungless == {name for name in CATALOGUE if rung_of(name) is None}


# --- observed: one row per threshold ------------------------------------------------------------

@pytest.mark.parametrize(("rungs", "expected"), [
    ([], "inactive"),
    (["transactional"], "transactional"),
    (["participant"], "transactional"),  # 1 at participant or above: transactional's 1, not participant's 2
    (["participant", "participant"], "participant"),
    (["transactional", "participant"], "transactional"),  # only 1 at participant or above
    (["contributor"], "transactional"),
    (["contributor", "contributor"], "contributor"),
    (["contributor", "advocate"], "contributor"),  # 2 at contributor or above, 1 at advocate
    (["participant", "collaborator"], "participant"),
    (["collaborator", "collaborator"], "collaborator"),
    (["collaborator", "advocate"], "collaborator"),
    (["advocate"], "transactional"),
    (["advocate", "advocate"], "advocate"),
    (["transactional"] * 10, "transactional"),  # many low events never climb the ladder
    (["participant"] * 5 + ["advocate"], "participant"),
])
def test_observed_rung_is_the_highest_threshold_reached(rungs: list[str], expected: str) -> None:
    assert observed([(at(1), rung) for rung in rungs], AS_OF) == expected


@pytest.mark.parametrize(("occurred_at", "counts"), [
    (AS_OF, True),  # the window is closed at T
    (AS_OF + MICRO, False),  # after T: not yet
    (AS_OF - WINDOW + MICRO, True),  # 90 days minus 1 µs before T
    (AS_OF - WINDOW, False),  # exactly 90 days before T: the window is open on the left
    (AS_OF - WINDOW - MICRO, False),
])
def test_the_window_is_open_on_the_left_and_closed_on_the_right(occurred_at: datetime, counts: bool) -> None:
    assert observed([(occurred_at, "transactional")], AS_OF) == ("transactional" if counts else "inactive")


def test_the_window_compares_instants_not_offsets() -> None:
    # 90 days before T, written at +02:00: still the same instant, still outside.
    edge = (AS_OF - WINDOW).astimezone(timezone(timedelta(hours=2)))
    assert observed([(edge, "transactional")], AS_OF) == "inactive"
    assert observed([(edge + MICRO, "transactional")], AS_OF) == "transactional"


def test_only_the_window_s_events_reach_a_rung() -> None:
    rungs = [(at(100), "advocate"), (at(10), "advocate"), (at(-1), "advocate")]
    assert observed(rungs, AS_OF) == "transactional"  # one 100 days old, one tomorrow
    assert observed(rungs, at(-1)) == "advocate"  # tomorrow: the last two
    assert observed(rungs, at(10)) == "transactional"  # the first is exactly 90 days old then
    assert observed(rungs, at(10) - MICRO) == "transactional"  # the second has not happened yet


# --- stated ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("statements", "expected"), [
    ([], None),
    ([Stated(at(5), "e-1", "advocate")], "advocate"),
    ([Stated(at(5), "e-1", "advocate"), Stated(at(1), "e-2", None)], None),  # a later null withdraws
    ([Stated(at(5), "e-1", None), Stated(at(1), "e-2", "participant")], "participant"),
    ([Stated(at(1), "e-2", "participant"), Stated(at(5), "e-1", "advocate")], "participant"),  # latest, not last
    ([Stated(at(1), "e-a", "advocate"), Stated(at(1), "e-b", "participant")], "participant"),  # tie: greater id
    ([Stated(at(1), "e-b", "participant"), Stated(at(1), "e-a", "advocate")], "participant"),
    ([Stated(AS_OF, "e-1", "advocate")], "advocate"),  # at T counts
    ([Stated(AS_OF + MICRO, "e-1", "advocate")], None),  # after T does not
    ([Stated(at(400), "e-1", "collaborator")], "collaborator"),  # no window: a statement stands until replaced
])
def test_stated_is_the_latest_statement_as_of_t(statements: list[Stated], expected: str | None) -> None:
    assert stated(statements, AS_OF) == expected


def test_stated_takes_plain_row_tuples() -> None:
    assert stated([(at(1), "e-1", "advocate")], AS_OF) == "advocate"


@pytest.mark.parametrize(("rungs", "statements", "expected"), [
    ([], [], Engagement("inactive", "inactive", None)),
    (["transactional"], [], Engagement("transactional", "transactional", None)),
    (["advocate", "advocate"], [("e-1", "transactional")], Engagement("transactional", "advocate", "transactional")),
    ([], [("e-1", "collaborator")], Engagement("collaborator", "inactive", "collaborator")),
    (["participant", "participant"], [("e-1", "advocate"), ("e-2", None)],
     Engagement("participant", "participant", None)),  # withdrawn: back to what we observe
])
def test_level_is_stated_when_not_null_else_observed(
    rungs: list[str], statements: list[tuple[str, str | None]], expected: Engagement
) -> None:
    said = [Stated(at(10 - i), event_id, level) for i, (event_id, level) in enumerate(statements)]
    assert engagement([(at(1), rung) for rung in rungs], said, AS_OF) == expected


# --- consent -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "expected"), [
    ([], None),
    ([(at(3), "e-1", False)], False),
    ([(at(3), "e-1", False), (at(1), "e-2", True)], True),  # granting again restores
    ([(at(1), "e-2", True), (at(3), "e-1", False)], True),  # latest, not last
    ([(at(1), "e-a", True), (at(1), "e-b", False)], False),  # tie: greater id
    ([(at(3), "e-1", True), (AS_OF + MICRO, "e-2", False)], True),  # after T does not count yet
])
def test_consent_is_the_latest_change_as_of_t(changes: list[tuple[datetime, str, bool]], expected: bool | None) -> None:
    assert consent_granted(changes, AS_OF) is expected


# --- change instants -----------------------------------------------------------------------------

def test_observed_changes_are_entries_and_exits_of_the_window() -> None:
    rungs = [(at(10), "participant"), (at(5), "participant"), (at(10), "advocate")]
    assert observed_changes(rungs) == [at(10), at(5), at(10) + WINDOW, at(5) + WINDOW]
    assert observed_changes([]) == []


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))
rung_events = st.lists(st.tuples(instants, st.sampled_from(LADDER[1:])), max_size=12)


@given(rungs=rung_events, data=st.data())
def test_observed_is_constant_between_change_instants(rungs: list[tuple[datetime, str]], data: st.DataObject) -> None:
    changes = observed_changes(rungs)
    # Every span [c_i, c_{i+1}), with the unbounded ones before the first and from the last on.
    bounds = [datetime(2024, 1, 1, tzinfo=UTC), *changes, datetime(2028, 1, 1, tzinfo=UTC)]
    for start, end in pairwise(bounds):
        inside = data.draw(st.datetimes(min_value=start.replace(tzinfo=None), max_value=(end - MICRO).replace(
            tzinfo=None), timezones=st.just(UTC)))
        assert observed(rungs, inside) == observed(rungs, start), (start, inside, end)


# --- explain -----------------------------------------------------------------------------------

def test_explain_names_the_events_counted_and_the_counts_behind_observed() -> None:
    rungs = [
        (AS_OF - WINDOW, "e-old", "advocate"),  # exactly 90 days: outside
        (at(2), "e-2", "advocate"),
        (at(3), "e-1", "contributor"),
        (AS_OF + MICRO, "e-future", "advocate"),
    ]
    assert explain_engagement(rungs, AS_OF) == {
        "as_of": "2026-10-01T12:00:00Z",
        "window": {"after": "2026-07-03T12:00:00Z", "until": "2026-10-01T12:00:00Z"},
        "events": [
            {"id": "e-1", "occurred_at": "2026-09-28T12:00:00Z", "rung": "contributor"},
            {"id": "e-2", "occurred_at": "2026-09-29T12:00:00Z", "rung": "advocate"},
        ],
        "rungs": [
            {"rung": "transactional", "count": 2, "threshold": 1, "reached": True},
            {"rung": "participant", "count": 2, "threshold": 2, "reached": True},
            {"rung": "contributor", "count": 2, "threshold": 2, "reached": True},
            {"rung": "collaborator", "count": 1, "threshold": 2, "reached": False},
            {"rung": "advocate", "count": 1, "threshold": 2, "reached": False},
        ],
        "observed": "contributor",
    }
    assert explain_engagement(rungs, AS_OF)["observed"] == observed([(t, r) for t, _, r in rungs], AS_OF)
