"""SPEC §4 as of an instant T: each event's weight, its decay, and the score and tier they sum to.

Pure folds over (occurred_at, weight) pairs, so the store can keep one weight per event row; time is
the parameter `as_of`. Only events with occurred_at ≤ T count (§3).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from commands.instants import rfc3339

HALF_LIFE = timedelta(days=90)

Tier = Literal["champion", "promoter", "neutral", "detractor"]

# The weight table of §4, in its order. A weight of 0 (review rating 3, nps 7–8 or none) is still a
# contribution: it is 0.0, not None, so /explain shows the auditor that the event was counted.
FIXED: dict[str, float] = {
    "referral.converted": 10.0,
    "answer.accepted": 5.0,
    "referral.made": 3.0,
    "answer.posted": 1.0,
    "content.shared": 1.0,
    "idea.submitted": 1.0,
}
DELIVERED = 8.0  # idea.status_changed to `delivered`, credited to the event's customer: the idea's author
REVIEW: dict[int, float] = {5: 4.0, 4: 2.0, 3: 0.0, 2: -2.0, 1: -4.0}


def weight(event_type: str, data: dict[str, Any]) -> float | None:
    """The event's weight, from its type and its data as builtins; None when it contributes nothing
    at all (every other type, and an idea moving to any status but `delivered`)."""
    if event_type in FIXED:
        return FIXED[event_type]
    if event_type == "idea.status_changed":
        return DELIVERED if data.get("status") == "delivered" else None
    if event_type == "review.posted":
        return REVIEW[data["rating"]]
    if event_type == "survey.answered":
        return _nps(data.get("nps"))
    return None


def _nps(nps: int | None) -> float:
    if nps is None:  # null and absent alike: no score given counts 0
        return 0.0
    if nps >= 9:
        return 5.0
    if nps >= 7:
        return 0.0
    return -5.0


def decayed(w: float, occurred_at: datetime, as_of: datetime) -> float:
    """w × 2^(−(T − occurred_at) / 90 days); 0.0 for an event after T, which does not count yet.

    timedelta / timedelta divides whole microseconds (exact integers) once, correctly rounded, so
    exactly 90 days is exactly one half-life."""
    if occurred_at > as_of:
        return 0.0
    return w * math.pow(2.0, -((as_of - occurred_at) / HALF_LIFE))


def score(contributions: Iterable[tuple[datetime, float]], as_of: datetime) -> float:
    """The unrounded sum of the decayed (occurred_at, weight) contributions with occurred_at ≤ T.

    math.fsum, not sum: float addition is not associative, so `sum` could give a different last bit
    for another arrival order, and a score (or a tier right at a boundary) must not depend on the
    order events reach the log. fsum returns the correctly rounded exact sum: one answer for any order."""
    # decayed() inlined, the same float operations on the same values (a call per term was a third
    # of the time: readers and the runner's tier decisions sum whole histories).
    power, half_life = math.pow, HALF_LIFE
    return math.fsum([w * power(2.0, -((as_of - at) / half_life)) for at, w in contributions if at <= as_of])


def tier(score: float) -> Tier:
    """From the UNROUNDED score: 19.999 reports as 20.0 but is a promoter."""
    if score >= 20:
        return "champion"
    if score >= 5:
        return "promoter"
    if score <= -5:
        return "detractor"
    return "neutral"


def reported(score: float) -> float:
    """Rounded to 2 decimals, and never -0.0 (a tiny negative score reports as 0.0, not "-0.0")."""
    return round(score, 2) + 0.0


class Advocacy(msgspec.Struct, frozen=True):
    """The §7 `advocacy` object: the score as reported, the tier from the unrounded score."""

    score: float
    tier: Tier


def advocacy(contributions: Iterable[tuple[datetime, float]], as_of: datetime) -> Advocacy:
    total = score(contributions, as_of)
    return Advocacy(score=reported(total), tier=tier(total))


_THRESHOLDS = (20.0, 5.0, -5.0)  # where tier() changes its answer
_MICRO = timedelta(microseconds=1)
_MICROS_PER_HALF_LIFE = HALF_LIFE // _MICRO
_MAX_REACH = 10_000  # µs probed either side of a crossing at most: only absurd cancellation needs more


def tier_changes(contributions: list[tuple[datetime, float]], until: datetime | None = None) -> list[datetime]:
    """The sorted instants at which tier(score(contributions, t)) can change, so that the tier is
    constant on [c_i, c_{i+1}) (and before the first, and from the last on): every contribution's
    occurred_at, and each microsecond at which a decaying score leaves a tier. Instants after
    `until` are left out.

    Between two contribution instants the score is S·2^(−(t − t_k)/τ) for the fixed S = score at
    t_k, so it moves monotonically toward 0 and meets each threshold θ at most once, at
    t* = t_k + τ·log2(S/θ). The tier still holds at t* (≥ 20, ≥ 5, ≤ −5), so the change is at the
    first microsecond after it. That is exact arithmetic; readers evaluate score(), a float whose
    last bits may put it on either side of θ for a few microseconds around t*. So t* only says
    where to look: score() itself is probed there, microsecond by microsecond, and every instant
    at which its tier flips is returned.
    """
    ordered = sorted(contributions, key=lambda c: c[0])
    instants = sorted({at for at, _ in ordered})
    changes = set(instants)
    counted = 0
    for k, start in enumerate(instants):
        end = instants[k + 1] if k + 1 < len(instants) else None
        while counted < len(ordered) and ordered[counted][0] <= start:
            counted += 1
        # Only contributions up to `start` count before `end`: score() over this prefix equals the
        # whole list's score in the gap, bit for bit, because later terms are filtered out of fsum.
        prefix = ordered[:counted]
        total = score(prefix, start)
        for threshold in _THRESHOLDS:
            changes.update(_crossings(prefix, total, threshold, start, end))
    return [t for t in sorted(changes) if until is None or t <= until]


def reaches(score: float, threshold: float) -> bool:
    """Whether a score is in the tier a threshold bounds (≥ 20, ≥ 5, ≤ −5)."""
    return score >= threshold if threshold > 0 else score <= threshold


def _crossings(
    prefix: list[tuple[datetime, float]], total: float, threshold: float, start: datetime, end: datetime | None
) -> list[datetime]:
    """The microseconds in (start, end) at which score() starts or stops reaching `threshold`."""
    if not reaches(total, threshold):
        return []  # the score at `start`, then decaying toward 0, never reaches it in this gap
    try:
        crossing = start + timedelta(microseconds=math.floor(_MICROS_PER_HALF_LIFE * math.log2(total / threshold)))
    except OverflowError:
        return []  # beyond datetime.max: never, as far as anyone can ask
    # How far the float score may stray from the exact sum near t*: each term is a product and a
    # power of a rounded exponent (relative error below (2 + x)·ε for an age of x half-lives), and
    # fsum rounds once. Farther than `reach` from t*, the exact score is farther than that from θ,
    # so score() is on the same side of θ as the exact score: only the instants in between can flip.
    error = sys.float_info.epsilon * (abs(threshold) + math.fsum(
        abs(decayed(w, at, crossing)) * (2 + (crossing - at) / HALF_LIFE) for at, w in prefix))
    slope = abs(threshold) * math.log(2) / _MICROS_PER_HALF_LIFE  # |d score / dt| at t*, per µs
    reach = _MICRO * min(_MAX_REACH, 2 + math.ceil(4 * error / slope))
    first = max(start, crossing - reach)
    last = crossing + reach if end is None or end - crossing > reach else end - _MICRO
    if first >= last:
        return []  # the next contribution comes first, and is a change instant itself
    flips: list[datetime] = []
    before = reaches(score(prefix, first), threshold)
    moment = first + _MICRO
    while moment <= last:
        now = reaches(score(prefix, moment), threshold)
        if now != before:
            flips.append(moment)
        before, moment = now, moment + _MICRO
    return flips


def explain_advocacy(
    contributions_with_ids: Iterable[tuple[datetime, str, str, float]], as_of: datetime
) -> list[dict[str, Any]]:
    """Every (occurred_at, event_id, type, weight) contribution with occurred_at ≤ T, sorted by
    (occurred_at, id), with its decayed value, then one closing row with the total: `total` the
    unrounded fsum of the `decayed` column, `score` as reported, and `tier` from the total."""
    rows = sorted((at, event_id, event_type, w) for at, event_id, event_type, w in contributions_with_ids
                  if at <= as_of)
    explained: list[dict[str, Any]] = [
        {"id": event_id, "type": event_type, "occurred_at": rfc3339(at), "weight": w,
         "decayed": decayed(w, at, as_of)}
        for at, event_id, event_type, w in rows
    ]
    total = math.fsum(row["decayed"] for row in explained)
    return [*explained, {"total": total, "score": reported(total), "tier": tier(total)}]

