"""SPEC §5's SLA judgements as of an instant T, and the §7 case object that carries them.

Which instant means what: a case is the fold of the *whole* log (commands.cases.apply, in log
order; §3: "case states follow the whole log"), so its state, first_response_at and solved_at are
the case as it stands now, whatever T is. T is only the clock of the judgements (§3: "T is also the
clock of the SLA judgements"): it measures how long a case has waited for what the log does not
hold yet. A first reply or a solve in the log is judged by its own minutes even when it occurred
after T; a first reply after T does not turn a case back into `pending` for an earlier T. For the
case as it stood at an earlier point of the log, `replay` (§8) is the tool.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from commands.cases import Case
from commands.instants import rfc3339

Judgement = Literal["met", "breached", "pending"]

# Minutes (first response, resolution) by the case's CURRENT priority: escalation moves the target.
TARGETS: dict[str, tuple[int, int]] = {
    "urgent": (60, 240),
    "high": (240, 1440),
    "normal": (480, 4320),
    "low": (1440, 7200),
}

_MINUTE = timedelta(minutes=1)
_REPORTED = frozenset({"solved", "closed"})  # when solved_at and resolution_minutes are reported


def minutes(start: datetime, end: datetime) -> int:
    """Whole minutes from start to end, rounded down, never below 0 (59.99 s is 0 minutes)."""
    return max(0, (end - start) // _MINUTE)


class Sla(msgspec.Struct, frozen=True):
    first_response: Judgement
    resolution: Judgement


def sla(case: Case, as_of: datetime) -> Sla:
    """Both judgements of §5, each comparing whole-minute figures with the target."""
    first_target, resolution_target = TARGETS[case.priority]
    waited = minutes(case.opened_at, as_of)
    first_response: Judgement
    if case.first_response_at is not None:
        came_in = minutes(case.opened_at, case.first_response_at)
        first_response = "met" if came_in <= first_target else "breached"
    else:  # solving does not stop this clock: only an agent reply does
        first_response = "breached" if waited > first_target else "pending"
    resolution: Judgement
    took = _resolution_minutes(case)
    if took is not None:
        resolution = "met" if took <= resolution_target else "breached"
    else:  # never solved, or reopened since: the clock runs from opened_at again
        resolution = "breached" if waited > resolution_target else "pending"
    return Sla(first_response=first_response, resolution=resolution)


def _resolution_minutes(case: Case) -> int | None:
    """opened_at → the latest solve, only while the case is solved or closed (§5)."""
    if case.state not in _REPORTED or case.solved_at is None:
        return None
    return minutes(case.opened_at, case.solved_at)


def case_view(case: Case, as_of: datetime) -> dict[str, Any]:
    """The §7 `GET /cases/{case}` object without "customer", which the store fills in (it knows the
    owning profile now, and null once erased). Timestamps are RFC 3339 UTC text."""
    reported = case.state in _REPORTED
    judged = sla(case, as_of)
    return {
        "case": case.case,
        "state": case.state,
        "priority": case.priority,
        "agent": case.agent,
        "team": case.team,
        "opened_at": rfc3339(case.opened_at),
        "first_response_at": None if case.first_response_at is None else rfc3339(case.first_response_at),
        "first_response_minutes": (
            None if case.first_response_at is None else minutes(case.opened_at, case.first_response_at)
        ),
        # A reopened case keeps its last solved_at internally; §5 shows it only while solved or closed.
        "solved_at": rfc3339(case.solved_at) if reported and case.solved_at is not None else None,
        "resolution_minutes": _resolution_minutes(case),
        "reopen_count": case.reopen_count,
        "rating": case.rating,
        "escalated": case.escalated,
        "sla": {"first_response": judged.first_response, "resolution": judged.resolution},
    }

