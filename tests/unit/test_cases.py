"""SPEC §5 as tables: which case events are refused from which state, and what each one does."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from commands.cases import ACTIVE, ALLOWED_FROM, Case, apply, decide
from commands.outcomes import Rejected
from commands.parsing import parse
from commands.touchpoints import CATALOGUE, Touchpoint

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
OPENED_AT = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
STATES = ("new", "open", "pending", "on_hold", "solved", "closed")

DATA: dict[str, dict[str, Any]] = {
    "case.opened": {"case": "k-1"},
    "case.assigned": {"case": "k-1", "agent": "ag-1", "team": "tier1"},
    "case.agent_replied": {"case": "k-1", "agent": "ag-1"},
    "case.customer_replied": {"case": "k-1"},
    "case.note_added": {"case": "k-1", "agent": "ag-1"},
    "case.put_on_hold": {"case": "k-1"},
    "case.escalated": {"case": "k-1", "priority": "urgent"},
    "case.solved": {"case": "k-1"},
    "case.reopened": {"case": "k-1"},
    "case.closed": {"case": "k-1"},
    "case.rated": {"case": "k-1", "rating": "bad"},
}


def tp(type_: str, data: dict[str, Any] | None = None, at: datetime = NOW, **fields: Any) -> Touchpoint[Any]:
    body = {
        "id": f"e-{type_}",
        "type": type_,
        "occurred_at": at.isoformat(),
        "source": "helpdesk",
        "channel": "email",
        "customer": "c-42",
        "data": DATA[type_] if data is None else data,
        **fields,
    }
    parsed = parse(msgspec.json.encode({k: v for k, v in body.items() if v is not ...}), NOW)
    assert isinstance(parsed, Touchpoint), parsed
    return parsed


def case_in(state: str, **changes: Any) -> Case:
    fresh = apply(None, tp("case.opened", at=OPENED_AT))
    return msgspec.structs.replace(fresh, state=state, **changes)


def test_every_case_event_is_in_the_table() -> None:
    case_types = {n for n, e in CATALOGUE.items() if e.case_event}
    assert set(DATA) == case_types
    assert set(ALLOWED_FROM) == case_types - {"case.opened"}
    assert frozenset({"new", "open", "pending", "on_hold"}) == ACTIVE


# The "from" column of SPEC §5, written out again rather than imported, so the table is checked.
FROM = {
    "case.assigned": {"new", "open", "pending", "on_hold"},
    "case.agent_replied": {"new", "open", "pending", "on_hold", "solved"},
    "case.customer_replied": {"new", "open", "pending", "on_hold", "solved"},
    "case.note_added": {"new", "open", "pending", "on_hold", "solved"},
    "case.put_on_hold": {"new", "open", "pending"},
    "case.escalated": {"new", "open", "pending", "on_hold"},
    "case.solved": {"new", "open", "pending", "on_hold"},
    "case.reopened": {"solved"},
    "case.closed": {"solved"},
    "case.rated": {"solved", "closed"},
}


@pytest.mark.parametrize(
    ("state", "event_type", "reason"),
    [(None, "case.opened", None)]
    + [(s, "case.opened", "case_exists") for s in STATES]
    + [(None, t, "unknown_case") for t in FROM]
    + [(s, t, None if s in allowed else "invalid_transition") for t, allowed in FROM.items() for s in STATES],
)
def test_case_rules(state: str | None, event_type: str, reason: str | None) -> None:
    current = None if state is None else case_in(state)
    verdict = decide(current, tp(event_type))
    assert (verdict.reason if verdict else None) == reason


@pytest.mark.parametrize("event_type", [t for t in DATA if t not in {"case.opened", "case.rated"}])
def test_any_event_on_a_closed_case_but_rated_is_an_invalid_transition(event_type: str) -> None:
    verdict = decide(case_in("closed"), tp(event_type))
    assert verdict == Rejected("invalid_transition", f"{event_type} while closed")


@pytest.mark.parametrize(
    ("state", "event_type", "verdict"),
    [
        (None, "case.solved", Rejected("unknown_case", "data.case: case 'k-1' never opened")),
        ("new", "case.opened", Rejected("case_exists", "data.case: case 'k-1' exists")),
        ("open", "case.reopened", Rejected("invalid_transition", "case.reopened while open")),
        ("solved", "case.assigned", Rejected("invalid_transition", "case.assigned while solved")),
        ("closed", "case.rated", None),
        ("closed", "case.note_added", Rejected("invalid_transition", "case.note_added while closed")),
    ],
)
def test_refusals_name_the_rule(state: str | None, event_type: str, verdict: Rejected | None) -> None:
    assert decide(None if state is None else case_in(state), tp(event_type)) == verdict


# --- what each allowed event does: the "to / effect" column ------------------------------------


@pytest.mark.parametrize(
    ("state", "event_type", "after"),
    [
        ("new", "case.assigned", "open"),
        ("open", "case.assigned", "open"),
        ("pending", "case.assigned", "pending"),
        ("on_hold", "case.assigned", "on_hold"),
        ("new", "case.agent_replied", "pending"),
        ("open", "case.agent_replied", "pending"),
        ("pending", "case.agent_replied", "pending"),
        ("on_hold", "case.agent_replied", "pending"),
        ("solved", "case.agent_replied", "solved"),
        ("new", "case.customer_replied", "new"),
        ("open", "case.customer_replied", "open"),
        ("pending", "case.customer_replied", "open"),
        ("on_hold", "case.customer_replied", "on_hold"),
        ("solved", "case.customer_replied", "open"),
        ("new", "case.note_added", "new"),
        ("open", "case.note_added", "open"),
        ("pending", "case.note_added", "pending"),
        ("on_hold", "case.note_added", "on_hold"),
        ("solved", "case.note_added", "solved"),
        ("new", "case.put_on_hold", "on_hold"),
        ("open", "case.put_on_hold", "on_hold"),
        ("pending", "case.put_on_hold", "on_hold"),
        ("new", "case.escalated", "new"),
        ("open", "case.escalated", "open"),
        ("pending", "case.escalated", "pending"),
        ("on_hold", "case.escalated", "on_hold"),
        ("new", "case.solved", "solved"),
        ("open", "case.solved", "solved"),
        ("pending", "case.solved", "solved"),
        ("on_hold", "case.solved", "solved"),
        ("solved", "case.reopened", "open"),
        ("solved", "case.closed", "closed"),
        ("solved", "case.rated", "solved"),
        ("closed", "case.rated", "closed"),
    ],
)
def test_transitions(state: str, event_type: str, after: str) -> None:
    assert apply(case_in(state), tp(event_type)).state == after


def test_every_allowed_pair_has_a_transition_row() -> None:
    rows = {(s, t) for t, allowed in FROM.items() for s in allowed}
    assert len(rows) == 34


def test_case_opened_starts_new_with_priority() -> None:
    case = apply(None, tp("case.opened", {"case": "k-1", "priority": "high"}, at=OPENED_AT))
    assert case == Case(
        case="k-1",
        opened_by="c-42",
        state="new",
        priority="high",
        agent=None,
        team=None,
        opened_at=OPENED_AT,
        first_response_at=None,
        solved_at=None,
        reopen_count=0,
        rating=None,
        escalated=False,
    )
    assert apply(None, tp("case.opened")).priority == "normal"


def test_case_opened_by_an_identity_belongs_to_its_anonymous_profile() -> None:
    opened = tp("case.opened", customer=..., identity={"channel": "Twitter", "handle": "@Alice"})
    assert apply(None, opened).opened_by == "~twitter:alice"


@pytest.mark.parametrize(
    ("data", "agent", "team"),
    [
        ({"case": "k-1", "agent": "ag-2", "team": "tier2"}, "ag-2", "tier2"),
        ({"case": "k-1", "agent": "ag-2"}, "ag-2", None),  # team null when omitted, even if set before
    ],
)
def test_case_assigned_sets_agent_and_team(data: dict[str, Any], agent: str, team: str | None) -> None:
    case = apply(case_in("open", agent="ag-1", team="tier1"), tp("case.assigned", data))
    assert (case.agent, case.team) == (agent, team)


def test_only_the_first_agent_reply_sets_first_response_at() -> None:
    first = NOW - timedelta(hours=3)
    case = apply(case_in("new"), tp("case.agent_replied", at=first))
    assert case.first_response_at == first
    case = apply(msgspec.structs.replace(case, state="open"), tp("case.agent_replied", at=NOW))
    assert case.first_response_at == first


def test_a_first_agent_reply_on_a_solved_case_sets_first_response_at() -> None:
    case = apply(case_in("solved"), tp("case.agent_replied", at=NOW))
    assert (case.state, case.first_response_at) == ("solved", NOW)


@pytest.mark.parametrize(("state", "count"), [("solved", 3), ("pending", 2), ("new", 2), ("open", 2)])
def test_customer_reply_reopens_only_a_solved_case(state: str, count: int) -> None:
    assert apply(case_in(state, reopen_count=2), tp("case.customer_replied")).reopen_count == count


def test_case_reopened_counts() -> None:
    case = apply(case_in("solved", reopen_count=1), tp("case.reopened"))
    assert (case.state, case.reopen_count) == ("open", 2)


def test_note_added_changes_nothing() -> None:
    for state in ("new", "open", "pending", "on_hold", "solved"):
        before = case_in(state)
        assert apply(before, tp("case.note_added")) == before


def test_case_escalated_sets_priority_and_escalated() -> None:
    case = apply(case_in("pending"), tp("case.escalated", {"case": "k-1", "priority": "low"}))
    assert (case.state, case.priority, case.escalated) == ("pending", "low", True)


def test_solved_at_is_the_latest_case_solved_in_log_order() -> None:
    later, earlier = NOW - timedelta(hours=1), NOW - timedelta(hours=2)
    case = apply(case_in("open"), tp("case.solved", at=later))
    assert case.solved_at == later
    case = apply(apply(case, tp("case.reopened")), tp("case.solved", at=earlier))
    assert (case.state, case.solved_at) == ("solved", earlier)  # log order, not occurred_at


def test_rating_is_the_latest_in_log_order() -> None:
    case = apply(case_in("solved"), tp("case.rated", {"case": "k-1", "rating": "good"}, at=NOW))
    assert case.rating == "good"
    case = apply(apply(case, tp("case.closed")), tp("case.rated", at=NOW - timedelta(days=1)))
    assert (case.state, case.rating) == ("closed", "bad")


def test_a_case_round_trips_through_msgpack() -> None:
    case = apply(case_in("open"), tp("case.agent_replied"))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(case), type=Case) == case


def test_apply_refuses_what_decide_refuses() -> None:
    with pytest.raises(ValueError):
        apply(None, tp("case.solved"))
