"""A profile's engagement and advocacy as piecewise-constant spans of the as_of instant.

Statistics and list filters for any T read the span that contains T (one indexed query) instead of
refolding every profile. The spans are swept in one pass over the profile's history:
- engagement changes only when an event enters the 90-day window (its occurred_at) or leaves it
  (occurred_at + 90 days), or at a statement or consent change;
- between two contributions the advocacy score is S·2^(−(T−r)/90 days) for a fixed S, so each
  tier threshold is crossed at most once in a gap, at an instant with a closed form.

Per-profile reads (GET /customers/{key}) use the exact folds of engagement.py and advocacy.py;
a span's value is the same fold evaluated at the span's start.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar

from projections.advocacy import HALF_LIFE, tier
from projections.engagement import LADDER, THRESHOLDS, WINDOW
from projections.store import BEGINNING, END, instant, sortable

_TAU = HALF_LIFE.total_seconds()
_THRESHOLDS = (20.0, 5.0, -5.0)  # SPEC §4 tier boundaries
_MICRO = timedelta(microseconds=1)
_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)  # BEGINNING

V = TypeVar("V")


class History(NamedTuple):
    """A profile's events as the folds need them, each list sorted by (occurred_at, id)."""

    rungs: list[tuple[datetime, int]]
    statements: list[tuple[datetime, str, str | None]]
    consents: list[tuple[datetime, str, bool]]  # purpose `profiling` only
    contributions: list[tuple[datetime, float]]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str, int | None, float | None, str | None]]) -> History:
        rungs, statements, consents, contributions = [], [], [], []
        for occurred_at, event_id, _type, rung, w, detail in sorted(rows, key=lambda r: (r[0], r[1])):
            at = instant(occurred_at)
            if rung is not None:
                rungs.append((at, rung))
            if w is not None:
                contributions.append((at, w))
            if _type == "preferences.stated":
                statements.append((at, event_id, detail or None))
            elif _type == "consent.changed" and detail is not None and detail.startswith("profiling:"):
                consents.append((at, event_id, detail.endswith(":granted")))
        return cls(rungs, statements, consents, contributions)


def engagement_spans(h: History) -> list[tuple[str, str, str, str, str | None]]:
    """(start, end, level, observed, stated) spans covering all time; `withheld` while consent is."""
    breaks = sorted({t for t, _ in h.rungs} | {t + WINDOW for t, _ in h.rungs}
                    | {t for t, _, _ in h.statements} | {t for t, _, _ in h.consents})
    counts = [0] * len(LADDER)
    entering = leaving = said = consented = 0
    stated: str | None = None
    withheld = False
    values: list[tuple[str, str, str | None]] = [("inactive", "inactive", None)]
    for at in breaks:
        while entering < len(h.rungs) and h.rungs[entering][0] <= at:
            counts[h.rungs[entering][1]] += 1
            entering += 1
        while leaving < len(h.rungs) and h.rungs[leaving][0] + WINDOW <= at:  # the window is (T−90d, T]
            counts[h.rungs[leaving][1]] -= 1
            leaving += 1
        while said < len(h.statements) and h.statements[said][0] <= at:
            stated = h.statements[said][2]
            said += 1
        while consented < len(h.consents) and h.consents[consented][0] <= at:
            withheld = not h.consents[consented][2]
            consented += 1
        observed = _observed(counts)
        level = "withheld" if withheld else (stated or observed)
        values.append((level, observed, stated))
    return [(start, end, *value) for start, end, value in _merge([None, *breaks], values)]


def _observed(counts: list[int]) -> str:
    at_or_above = 0
    for rank in range(len(LADDER) - 1, 0, -1):
        at_or_above += counts[rank]
        if at_or_above >= THRESHOLDS[LADDER[rank]]:
            return LADDER[rank]
    return LADDER[0]


def advocacy_spans(h: History) -> list[tuple[str, str, str]]:
    """(start, end, tier) spans covering all time; `withheld` while profiling consent is."""
    if not h.contributions and not h.consents:
        return [(BEGINNING, END, "neutral")]
    origin = (h.contributions or h.consents)[0][0]  # r: keeps the exponents small
    partials: list[float] = []  # Shewchuk partials: S is summed exactly, whatever the order of arrival
    points: list[tuple[datetime, float]] = []  # (instant, S from then on)
    for at, w in h.contributions:
        _add(partials, w * 2.0 ** ((at - origin).total_seconds() / _TAU))
        if points and points[-1][0] == at:
            points[-1] = (at, math.fsum(partials))
        else:
            points.append((at, math.fsum(partials)))
    breaks: set[datetime] = {at for at, _ in points} | {at for at, _, _ in h.consents}
    for k, (at, total) in enumerate(points):
        until = points[k + 1][0] if k + 1 < len(points) else None
        for threshold in _THRESHOLDS:
            crossing = _crossing(total, threshold, origin)
            if crossing is not None and at < crossing and (until is None or crossing < until):
                breaks.add(crossing)
    ordered = sorted(breaks)
    values, consented, withheld, k = ["neutral"], 0, False, -1
    for at in ordered:
        while k + 1 < len(points) and points[k + 1][0] <= at:
            k += 1
        while consented < len(h.consents) and h.consents[consented][0] <= at:
            withheld = not h.consents[consented][2]
            consented += 1
        score = 0.0 if k < 0 else points[k][1] * 2.0 ** (-(at - origin).total_seconds() / _TAU)
        values.append("withheld" if withheld else tier(score))
    return _merge([None, *ordered], values)


def _crossing(total: float, threshold: float, origin: datetime) -> datetime | None:
    """The first microsecond at which S·2^(−(T−r)/τ) has decayed past the threshold."""
    if total == 0 or (total > 0) != (threshold > 0) or abs(total) < abs(threshold):
        return None
    seconds = _TAU * math.log2(total / threshold)
    try:
        moment = origin + timedelta(seconds=seconds)
    except OverflowError:
        return None
    return moment + _MICRO  # the first microsecond past the instant the score equals θ


def _add(partials: list[float], x: float) -> None:
    """Shewchuk's exact running sum (as in math.fsum's recipe): partials hold it without error."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _merge(starts: list[datetime | None], values: list[V]) -> list[tuple[str, str, V]]:
    """Adjacent spans with the same value become one; the first starts at the beginning of time
    (None), the last runs to its end. Only the boundaries kept are written as text. A change at the
    beginning of time itself (an event of 0001-01-01T00:00:00Z) leaves the first span empty: it goes."""
    kept: list[tuple[datetime | None, V]] = []
    for start, value in zip(starts, values, strict=True):
        if start == _FIRST_INSTANT:
            kept.pop()
        if not kept or kept[-1][1] != value:
            kept.append((start, value))
    texts = [BEGINNING if start is None else sortable(start) for start, _ in kept] + [END]
    return [(texts[k], texts[k + 1], value) for k, (_, value) in enumerate(kept)]

