"""SPEC §5 kept as a table: which case events are allowed from which state, and what follows."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec.structs import replace

from commands.outcomes import Rejected
from commands.touchpoints import Priority, Touchpoint, profile_key

State = Literal["new", "open", "pending", "on_hold", "solved", "closed"]

ACTIVE = frozenset({"new", "open", "pending", "on_hold"})
_ACTIVE_OR_SOLVED = ACTIVE | {"solved"}

# The "from" column of §5 (case.opened has none: it needs no case at all).
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "case.assigned": ACTIVE,
    "case.agent_replied": _ACTIVE_OR_SOLVED,
    "case.customer_replied": _ACTIVE_OR_SOLVED,
    "case.note_added": _ACTIVE_OR_SOLVED,
    "case.put_on_hold": frozenset({"new", "open", "pending"}),
    "case.escalated": ACTIVE,
    "case.solved": ACTIVE,
    "case.reopened": frozenset({"solved"}),
    "case.closed": frozenset({"solved"}),
    "case.rated": frozenset({"solved", "closed"}),
}


class Case(msgspec.Struct, frozen=True):
    """A case as the log's events so far make it, applied in log order."""

    case: str
    opened_by: str  # the profile key the case.opened event carried
    state: State
    priority: Priority
    agent: str | None
    team: str | None
    opened_at: datetime
    first_response_at: datetime | None
    # The latest case.solved in log order. §5 reports it only while solved or closed: a reopened
    # case keeps the value here, and readers show null.
    solved_at: datetime | None
    reopen_count: int
    rating: Literal["good", "bad"] | None
    escalated: bool


def decide(current: Case | None, tp: Touchpoint[Any]) -> Rejected | None:
    """None when §5 allows the event on the case as it stands."""
    case = tp.data.case
    if tp.type == "case.opened":
        if current is not None:
            return Rejected("case_exists", f"data.case: case {case!r} exists")
        return None
    if current is None:
        return Rejected("unknown_case", f"data.case: case {case!r} never opened")
    # Covers "any event on a closed case except case.rated": only case.rated lists closed.
    if current.state not in ALLOWED_FROM[tp.type]:
        return Rejected("invalid_transition", f"{tp.type} while {current.state}")
    return None


def apply(current: Case | None, tp: Touchpoint[Any]) -> Case:
    """The case after an event `decide` allowed: the "to / effect" column of §5."""
    data = tp.data
    match tp.type, current:
        case "case.opened", None:
            return Case(
                case=data.case,
                opened_by=profile_key(tp),
                state="new",
                priority=data.priority,
                agent=None,
                team=None,
                opened_at=tp.occurred_at,
                first_response_at=None,
                solved_at=None,
                reopen_count=0,
                rating=None,
                escalated=False,
            )
        case "case.assigned", Case(state=state):
            team = data.team if isinstance(data.team, str) else None
            return replace(current, state="open" if state == "new" else state, agent=data.agent, team=team)
        case "case.agent_replied", Case(state=state, first_response_at=first):
            return replace(
                current,
                state="solved" if state == "solved" else "pending",
                first_response_at=tp.occurred_at if first is None else first,
            )
        case "case.customer_replied", Case(state="pending"):
            return replace(current, state="open")
        case "case.customer_replied", Case(state="solved", reopen_count=n):
            return replace(current, state="open", reopen_count=n + 1)
        case "case.customer_replied" | "case.note_added", Case():
            return current
        case "case.put_on_hold", Case():
            return replace(current, state="on_hold")
        case "case.escalated", Case():
            return replace(current, priority=data.priority, escalated=True)
        case "case.solved", Case():
            return replace(current, state="solved", solved_at=tp.occurred_at)
        case "case.reopened", Case(reopen_count=n):
            return replace(current, state="open", reopen_count=n + 1)
        case "case.closed", Case():
            return replace(current, state="closed")
        case "case.rated", Case():
            return replace(current, rating=data.rating)
    raise ValueError(f"{tp.type} cannot apply to {current!r}: decide() refuses it")
