"""SPEC §5's SLA as tables: each priority's targets at the boundary minute, and the §7 case object."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from commands.cases import Case, apply
from commands.touchpoints import CATALOGUE, Touchpoint
from projections.sla import TARGETS, Sla, case_view, minutes, sla

OPENED_AT = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
MICRO = timedelta(microseconds=1)
PRIORITIES = ("urgent", "high", "normal", "low")


def case(**changes: Any) -> Case:
    fresh = Case(case="k-1", opened_by="c-1", state="new", priority="normal", agent=None, team=None,
                 opened_at=OPENED_AT, first_response_at=None, solved_at=None, reopen_count=0, rating=None,
                 escalated=False)
    return msgspec.structs.replace(fresh, **changes)


def after(whole_minutes: int, extra: timedelta = timedelta(0)) -> datetime:
    return OPENED_AT + whole_minutes * MINUTE + extra


def test_targets_are_the_contract_s() -> None:
    assert TARGETS == {"urgent": (60, 240), "high": (240, 1440), "normal": (480, 4320), "low": (1440, 7200)}


@pytest.mark.parametrize(("end", "expected"), [
    (OPENED_AT, 0),
    (OPENED_AT + 59 * SECOND + 999_999 * MICRO, 0),  # rounded down
    (OPENED_AT + MINUTE, 1),
    (OPENED_AT + 2 * MINUTE - MICRO, 1),
    (OPENED_AT + timedelta(days=1), 1440),
    (OPENED_AT - MINUTE, 0),  # never below 0
])
def test_minutes_are_whole_and_rounded_down(end: datetime, expected: int) -> None:
    assert minutes(OPENED_AT, end) == expected


# --- first response: for each priority, the boundary minute ---------------------------------------

def first_response_rows() -> list[Any]:
    rows = []
    for priority in PRIORITIES:
        t = TARGETS[priority][0]
        rows += [
            pytest.param(priority, after(t), after(t + 5), "met", id=f"{priority}-reply-at-target"),
            pytest.param(priority, after(t, 59 * SECOND), after(t + 5), "met", id=f"{priority}-reply-seconds-down"),
            pytest.param(priority, after(t + 1), after(t + 5), "breached", id=f"{priority}-reply-at-target+1"),
            pytest.param(priority, after(0), after(t + 5), "met", id=f"{priority}-reply-at-once"),
            pytest.param(priority, None, after(t), "pending", id=f"{priority}-waiting-target"),
            pytest.param(priority, None, after(t + 1) - MICRO, "pending", id=f"{priority}-waiting-target-59.99s"),
            pytest.param(priority, None, after(t + 1), "breached", id=f"{priority}-waiting-target+1"),
            pytest.param(priority, None, OPENED_AT - MINUTE, "pending", id=f"{priority}-before-opened"),
        ]
    return rows


@pytest.mark.parametrize(("priority", "first_response_at", "as_of", "expected"), first_response_rows())
def test_first_response(priority: str, first_response_at: datetime | None, as_of: datetime, expected: str) -> None:
    judged = sla(case(priority=priority, state="pending", first_response_at=first_response_at), as_of)
    assert judged.first_response == expected


def test_a_late_reply_in_the_log_is_breached_whatever_t() -> None:
    # Case states follow the whole log; T is only the clock for what has not come.
    late = case(priority="urgent", state="pending", first_response_at=after(61))
    assert sla(late, after(1)).first_response == "breached"
    on_time = case(priority="urgent", state="pending", first_response_at=after(59))
    assert sla(on_time, after(1)).first_response == "met"


def test_solving_does_not_stop_the_first_response_clock() -> None:
    solved = case(priority="urgent", state="solved", solved_at=after(10))
    assert sla(solved, after(60)) == Sla(first_response="pending", resolution="met")
    assert sla(solved, after(61)) == Sla(first_response="breached", resolution="met")
    assert sla(case(priority="urgent", state="closed", solved_at=after(10)), after(61)).first_response == "breached"


# --- resolution: for each priority, the boundary minute -------------------------------------------

def resolution_rows() -> list[Any]:
    rows = []
    for priority in PRIORITIES:
        r = TARGETS[priority][1]
        later = after(r + 100)
        rows += [
            pytest.param(priority, "solved", after(r), later, "met", id=f"{priority}-solved-at-target"),
            pytest.param(priority, "solved", after(r, 59 * SECOND), later, "met", id=f"{priority}-solved-seconds-down"),
            pytest.param(priority, "solved", after(r + 1), later, "breached", id=f"{priority}-solved-at-target+1"),
            pytest.param(priority, "closed", after(r), later, "met", id=f"{priority}-closed-at-target"),
            pytest.param(priority, "closed", after(r + 1), later, "breached", id=f"{priority}-closed-at-target+1"),
            pytest.param(priority, "open", None, after(r), "pending", id=f"{priority}-open-target"),
            pytest.param(priority, "on_hold", None, after(r + 1) - MICRO, "pending", id=f"{priority}-on-hold-target"),
            pytest.param(priority, "pending", None, after(r + 1), "breached", id=f"{priority}-pending-target+1"),
            # Reopened: the earlier solve no longer counts, the clock from opened_at runs on.
            pytest.param(priority, "open", after(1), after(r), "pending", id=f"{priority}-reopened-target"),
            pytest.param(priority, "open", after(1), after(r + 1), "breached", id=f"{priority}-reopened-target+1"),
        ]
    return rows


@pytest.mark.parametrize(("priority", "state", "solved_at", "as_of", "expected"), resolution_rows())
def test_resolution(priority: str, state: str, solved_at: datetime | None, as_of: datetime, expected: str) -> None:
    assert sla(case(priority=priority, state=state, solved_at=solved_at), as_of).resolution == expected


# --- escalation: the current priority's targets ----------------------------------------------------

def event(n: int, event_type: str, at: datetime, **data: Any) -> Touchpoint[Any]:
    return Touchpoint(id=f"e-{n}", type=event_type, occurred_at=at, source="helpdesk", channel="email",
                      customer="c-1", data=CATALOGUE[event_type].data(case="k-1", **data))


def test_escalation_judges_by_the_current_priority() -> None:
    opened = apply(None, event(1, "case.opened", OPENED_AT))
    replied = apply(opened, event(2, "case.agent_replied", after(100), agent="ag-1"))
    assert sla(replied, after(100)) == Sla(first_response="met", resolution="pending")  # normal: 480 / 4320
    escalated = apply(replied, event(3, "case.escalated", after(200), priority="urgent"))
    assert escalated.escalated
    assert sla(escalated, after(200)) == Sla(first_response="breached", resolution="pending")  # urgent: 60 / 240
    assert sla(escalated, after(241)) == Sla(first_response="breached", resolution="breached")
    relaxed = apply(escalated, event(4, "case.escalated", after(300), priority="low"))
    assert sla(relaxed, after(300)) == Sla(first_response="met", resolution="pending")  # low: 1440 / 7200


# --- the case object of §7 -------------------------------------------------------------------------

def test_case_view_of_a_solved_case() -> None:
    solved = case(state="solved", priority="high", agent="ag-1", team="tier1",
                  first_response_at=after(30, 30 * SECOND), solved_at=after(1441, MICRO * 500_000), rating="good",
                  escalated=True, reopen_count=1)
    assert case_view(solved, after(2000)) == {
        "case": "k-1",
        "state": "solved",
        "priority": "high",
        "agent": "ag-1",
        "team": "tier1",
        "opened_at": "2026-10-01T08:00:00Z",
        "first_response_at": "2026-10-01T08:30:30Z",
        "first_response_minutes": 30,
        "solved_at": "2026-10-02T08:01:00.500000Z",
        "resolution_minutes": 1441,
        "reopen_count": 1,
        "rating": "good",
        "escalated": True,
        "sla": {"first_response": "met", "resolution": "breached"},
    }


@pytest.mark.parametrize(("state", "reported"), [
    ("solved", True),
    ("closed", True),
    ("open", False),  # reopened: the last solve is kept in the case, but not reported
    ("pending", False),
])
def test_solved_at_and_resolution_minutes_only_while_solved_or_closed(state: str, reported: bool) -> None:
    view = case_view(case(state=state, solved_at=after(90), reopen_count=0 if reported else 1), after(100))
    assert view["solved_at"] == ("2026-10-01T09:30:00Z" if reported else None)
    assert view["resolution_minutes"] == (90 if reported else None)


def test_case_view_of_a_new_case() -> None:
    view = case_view(case(), after(10))
    assert view["first_response_at"] is None
    assert view["first_response_minutes"] is None
    assert view["agent"] is None and view["team"] is None and view["rating"] is None
    assert view["sla"] == {"first_response": "pending", "resolution": "pending"}
    assert "customer" not in view and "opened_by" not in view  # the store fills in the owner
    assert list(view) == ["case", "state", "priority", "agent", "team", "opened_at", "first_response_at",
                          "first_response_minutes", "solved_at", "resolution_minutes", "reopen_count", "rating",
                          "escalated", "sla"]


def test_case_view_timestamps_are_utc() -> None:
    at_plus_two = OPENED_AT.astimezone(timezone(timedelta(hours=2)))
    assert case_view(case(opened_at=at_plus_two), after(1))["opened_at"] == "2026-10-01T08:00:00Z"
