"""SPEC §3 as of an instant T: the ladder, the observed and stated levels, and profiling consent.

Pure folds over small plain values (instants, ids, rung names), so the store can feed them from its
rows; time is the parameter `as_of`, never the clock. Only events with occurred_at ≤ T count.
"Latest" is the greatest (occurred_at, id) pair, whatever order the values arrive in; ids are
unique in the log, so that pair never ties.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import msgspec

from commands.instants import rfc3339
from commands.touchpoints import CATALOGUE, RUNGS, Rung

LADDER: tuple[Rung, ...] = RUNGS  # "inactive" (0) … "advocate" (5)
RANK: dict[str, int] = {name: index for index, name in enumerate(LADDER)}
WINDOW = timedelta(days=90)
# How many events at a rung *or above* reach it (§3). "inactive" needs none: it is what is left.
THRESHOLDS: dict[str, int] = {"transactional": 1, "participant": 2, "contributor": 2, "collaborator": 2, "advocate": 2}


def rung_of(event_type: str) -> Rung | None:
    """The rung an event type counts toward (the catalogue's column), None for "-".

    A type outside the catalogue raises KeyError: the log holds only catalogue types, so one
    reaching a projection is a bug, not data."""
    return CATALOGUE[event_type].rung


def in_window(occurred_at: datetime, as_of: datetime) -> bool:
    """(T − 90 days, T]: an event counts from its own instant for exactly 90 days, then no more."""
    return as_of - WINDOW < occurred_at <= as_of


def observed(rungs: Iterable[tuple[datetime, str]], as_of: datetime) -> Rung:
    """The highest rung reached by the (occurred_at, rung) events in the window, else "inactive"."""
    return _highest(_at_or_above(rung for at, rung in rungs if in_window(at, as_of)))


def _at_or_above(rungs: Iterable[str]) -> dict[str, int]:
    """Per rung from transactional up, how many of the events are at that rung or above."""
    counts = Counter(rungs)
    totals: dict[str, int] = {}
    running = 0
    for rung in reversed(LADDER[1:]):
        running += counts[rung]
        totals[rung] = running
    return totals


def _highest(at_or_above: dict[str, int]) -> Rung:
    # The counts shrink going up while the thresholds never fall below the first one's, so the
    # first rung reached from the top is the highest reached.
    for rung in reversed(LADDER[1:]):
        if at_or_above[rung] >= THRESHOLDS[rung]:
            return rung
    return LADDER[0]


class Stated(NamedTuple):
    """One `preferences.stated`: `level` None is a withdrawal."""

    occurred_at: datetime
    event_id: str
    level: str | None


def stated(statements: Iterable[tuple[datetime, str, str | None]], as_of: datetime) -> str | None:
    """The level of the latest statement with occurred_at ≤ T (None when withdrawn), or None.

    Takes `Stated` values or plain (occurred_at, event_id, level) tuples, as rows give them."""
    latest = _latest((Stated(*s) for s in statements), as_of)
    return None if latest is None else latest.level


def _latest(items: Iterable[Stated], as_of: datetime) -> Stated | None:
    return max((s for s in items if s.occurred_at <= as_of), key=lambda s: (s.occurred_at, s.event_id), default=None)


class Engagement(msgspec.Struct, frozen=True):
    """The §7 `engagement` object: `level` is `stated` when not null, else `observed`."""

    level: str
    observed: str
    stated: str | None


def engagement(
    rungs: Iterable[tuple[datetime, str]],
    statements: Iterable[tuple[datetime, str, str | None]],
    as_of: datetime,
) -> Engagement:
    seen = observed(rungs, as_of)
    said = stated(statements, as_of)
    # The customer's own word outranks what we infer (§3).
    return Engagement(level=seen if said is None else said, observed=seen, stated=said)


def consent_granted(changes: Iterable[tuple[datetime, str, bool]], as_of: datetime) -> bool | None:
    """`granted` of the latest (occurred_at, event_id, granted) change with occurred_at ≤ T, or None.

    The store calls it per purpose; for `profiling`, engagement and advocacy are withheld only when
    this is False (§4): no statement at all is not a refusal."""
    latest = max(((at, event_id, granted) for at, event_id, granted in changes if at <= as_of),
                 key=lambda c: (c[0], c[1]), default=None)
    return None if latest is None else latest[2]


def observed_changes(rungs: Iterable[tuple[datetime, str]]) -> list[datetime]:
    """The sorted distinct instants at which `observed` can change: each event enters the window
    at its occurred_at and leaves it 90 days later, so `observed` is constant on [c_i, c_{i+1}),
    before the first and from the last on."""
    changes: set[datetime] = set()
    for at, _rung in rungs:
        changes.add(at)
        changes.add(at + WINDOW)
    return sorted(changes)


def explain_engagement(rungs_with_ids: Iterable[tuple[datetime, str, str]], as_of: datetime) -> dict[str, Any]:
    """What lies behind `observed` (for /explain): the (occurred_at, event_id, rung) events counted,
    per rung the count at that rung or above against its threshold, and the rung reached."""
    counted = sorted((at, event_id, rung) for at, event_id, rung in rungs_with_ids if in_window(at, as_of))
    totals = _at_or_above(rung for _, _, rung in counted)
    return {
        "as_of": rfc3339(as_of),
        "window": {"after": rfc3339(as_of - WINDOW), "until": rfc3339(as_of)},  # (after, until]
        "events": [{"id": event_id, "occurred_at": rfc3339(at), "rung": rung} for at, event_id, rung in counted],
        "rungs": [{"rung": rung, "count": totals[rung], "threshold": THRESHOLDS[rung],
                   "reached": totals[rung] >= THRESHOLDS[rung]} for rung in LADDER[1:]],
        "observed": _highest(totals),
    }

