"""What the dashboard shows, as plain values the templates lay out (pure functions, no I/O)."""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from projections.engagement import LADDER
from projections.vocabulary import OPEN_STATES, STATES, TIERS, WITHHELD


class Bar(NamedTuple):
    label: str
    value: int
    share: float  # of the largest bar in its chart, 0–100


class Rung(NamedTuple):
    level: str
    now: int  # profiles on the rung (stated over observed)
    observed: int
    stated: int
    share_now: float
    share_observed: float
    share_stated: float


def _share(value: int, largest: int) -> float:
    return round(100.0 * value / largest, 1) if largest else 0.0


def bars(counts: Mapping[str, int], order: Iterable[str] = ()) -> list[Bar]:
    """Bars in `order` (every label of it, zeros included), then any other label by count."""
    labels = list(order)
    labels += sorted((k for k in counts if k not in labels), key=lambda k: (-counts[k], k))
    largest = max((counts.get(k, 0) for k in labels), default=0)
    return [Bar(k, counts.get(k, 0), _share(counts.get(k, 0), largest)) for k in labels]


def rungs(ladder: Mapping[str, Mapping[str, int]]) -> list[Rung]:
    """The ladder from the top rung down, `withheld` last."""
    level, observed, stated = ladder.get("level", {}), ladder.get("observed", {}), ladder.get("stated", {})
    largest = max([*level.values(), *observed.values(), *stated.values(), 0])
    return [Rung(name, level.get(name, 0), observed.get(name, 0), stated.get(name, 0),
                 _share(level.get(name, 0), largest), _share(observed.get(name, 0), largest),
                 _share(stated.get(name, 0), largest))
            for name in (*reversed(LADDER), WITHHELD)]


class Rate:
    """Events per second into the log, from the head positions seen at successive renders: measured
    from the newest sighting that is at least `window` seconds old (or the oldest there is)."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self._seen: deque[tuple[float, int]] = deque()

    def observe(self, head: int, now: float | None = None) -> float | None:
        """Record the head now; the rate over the window so far (None until two sightings)."""
        moment = time.monotonic() if now is None else now
        self._seen.append((moment, head))
        while len(self._seen) > 2 and moment - self._seen[1][0] >= self.window:
            self._seen.popleft()
        (t0, h0), (t1, h1) = self._seen[0], self._seen[-1]
        return (h1 - h0) / (t1 - t0) if t1 > t0 else None


def number(value: float | int | None, digits: int = 0) -> str:
    """1234567 → "1,234,567"; None → "–"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def summary(stats: Mapping[str, Any], ladder: Mapping[str, Mapping[str, int]], rejects: list[Any] | None,
            head: int, projected: int, rate: float | None) -> dict[str, Any]:
    """Everything the panels show, from /stats' own answer (so the page equals /stats). `rejects`:
    the latest kept, or None for a role that may not read them (GET /rejects is theirs too)."""
    rejected: Mapping[str, int] = stats["rejected"]
    cases: Mapping[str, int] = stats["cases"]
    sla: Mapping[str, int] = stats["sla"]
    return {
        "stats": stats,
        "totals": {
            "events": stats["events"], "profiles": stats["profiles"], "rejected": sum(rejected.values()),
            "open_cases": sum(cases.get(s, 0) for s in OPEN_STATES), "cases": sum(cases.values()),
            "breached": sla["first_response_breached"] + sla["resolution_breached"],
        },
        "rungs": rungs(ladder),
        "tiers": bars(stats["advocacy"], TIERS),
        "states": bars(cases, STATES),
        "sla": bars({"first response": sla["first_response_breached"], "resolution": sla["resolution_breached"]},
                    ("first response", "resolution")),
        "reasons": bars(rejected),
        "rejects": rejects,
        "head": head, "projected": projected, "lag": head - projected, "rate": rate,
    }
