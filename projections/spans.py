"""A profile's engagement and advocacy as piecewise-constant spans of the as_of instant.

Statistics and list filters for any T read the span that contains T (one indexed query) instead of
refolding every profile. The spans are swept in one pass over the profile's history:
- engagement changes only when an event enters the 90-day window (its occurred_at) or leaves it
  (occurred_at + 90 days), or at a statement or consent change;
- between two contributions the advocacy score is S·2^(−(T−r)/90 days) for a fixed S, so each
  tier threshold is crossed at most once in a gap, at an instant with a closed form (and where
  rounding could move that instant by a microsecond, the fold itself says where).

Per-profile reads (GET /customers/{key}) use the exact folds of engagement.py and advocacy.py;
a span's value is the same fold evaluated at the span's start.

A profile's spans before an instant depend only on its events up to that instant. So when new
events sort after all of a profile's history (its latest touchpoints, the usual case), `respan`
computes its spans only from the first of them on, from the folds' state after its last event
(`Resume`, kept beside the spans): the cost goes with what is new, not with the profile's
history, however much of it lies in the 90-day window. For engagement that state is the stated
level, the consent, and the latest two events at each rung: a level needs one or two events at
its rung or above in the window (THRESHOLDS), so whether it is reached at any later instant
depends on the latest two at or above it alone, and those are among the latest two of each rung.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar

import msgspec

from projections.advocacy import HALF_LIFE, reaches, score, tier
from projections.engagement import LADDER, THRESHOLDS, WINDOW
from projections.store import BEGINNING, END, instant, sortable

_TAU = HALF_LIFE.total_seconds()
_THRESHOLDS = (20.0, 5.0, -5.0)  # SPEC §4 tier boundaries
_MICRO = timedelta(microseconds=1)
_MICROS_PER_HALF_LIFE = HALF_LIFE // _MICRO
_MICROS_PER_LN2 = _MICROS_PER_HALF_LIFE / math.log(2)  # 1 / the decay's slope per unit of score, in µs
_EPSILON = sys.float_info.epsilon
_MAX_PROBE = 10_000  # µs probed either side of t* at most: only absurd cancellation reaches farther
_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)  # BEGINNING

V = TypeVar("V")


Row = tuple[str, str, str, int | None, float | None, str | None]  # occurred_at, id, type, rung, weight, detail


Contributions = list[tuple[datetime, float]]


class History(NamedTuple):
    """A profile's events as the folds need them, each list sorted by (occurred_at, id).

    A history `since` a sort key (a respan of what follows a `Resume`) holds the events from that
    key on: the rest of the past is in the Resume. Only a tier decision within rounding of a
    threshold needs the contributions before it: `earlier` loads them then."""

    rungs: list[tuple[datetime, int]]
    statements: list[tuple[datetime, str, str | None]]
    consents: list[tuple[datetime, str, bool]]  # purpose `profiling` only
    contributions: Contributions
    earlier: Callable[[], Contributions] | None = None
    last: str = ""  # the sort key of its last event (FULL: none)

    def prefix(self, counted: int) -> Contributions:
        """The first `counted` contributions of the whole history (those score() sums at a point)."""
        if self.earlier is None:
            return self.contributions[:counted]
        earlier = self.earlier()
        return earlier + self.contributions[:counted - len(earlier)]

    @classmethod
    def from_rows(cls, rows: Iterable[Row], since: str | None = None,
                  earlier: Callable[[], Contributions] | None = None) -> History:
        """`earlier`, for a history `since` a key: the contributions before it (any order)."""
        rungs, statements, consents, contributions = [], [], [], []
        ordered = sorted(rows, key=lambda r: (r[0], r[1]))
        for occurred_at, event_id, _type, rung, w, detail in ordered:
            if since is not None and occurred_at + event_id < since:
                continue  # before what is new: the Resume holds it
            at = instant(occurred_at)
            if rung is not None:
                rungs.append((at, rung))
            if w is not None:
                contributions.append((at, w))
            if _type == "preferences.stated":
                statements.append((at, event_id, detail or None))
            elif _type == "consent.changed" and detail is not None and detail.startswith("profiling:"):
                consents.append((at, event_id, detail.endswith(":granted")))
        last = sort_key(ordered[-1][0], ordered[-1][1]) if ordered else FULL
        return cls(rungs, statements, consents, contributions, earlier, last)


def sort_key(occurred_at: str, event_id: str) -> str:
    """An event's place in a profile's history as one text: its sortable instant (fixed width)
    followed by its id, so that comparing the texts compares (occurred_at, id)."""
    return occurred_at + event_id


FULL = ""  # a sort key below every event's: spans recomputed from the beginning of time


class Resume(msgspec.Struct, array_like=True, frozen=True):
    """The folds' state after a profile's last event: what a respan of later events starts from."""

    last: str  # that event's sort_key
    stated: str | None  # the stated level in force (engagement)
    withheld: bool  # profiling consent withdrawn
    recent: list[tuple[str, int]]  # the latest RECENT events of each rung: (sortable instant, rank), in order
    origin: str | None  # r, the first contribution's sortable instant (None: no contribution yet)
    offset: int  # µs from r to the last contribution
    partials: list[float]  # Shewchuk partials of S
    magnitude: float  # Σ|g| (see _Point)
    aged: float  # Σ|g|·a
    counted: int  # contributions


_resume_encoder = msgspec.msgpack.Encoder()
_resume_decoder = msgspec.msgpack.Decoder(Resume)


def encode_resume(resume: Resume) -> bytes:
    return _resume_encoder.encode(resume)


def decode_resume(blob: bytes) -> Resume:
    return _resume_decoder.decode(blob)


RECENT = max(THRESHOLDS.values())  # events of each rung a Resume keeps (see the module's docstring)
_RECENT_ALL = RECENT * (len(LADDER) - 1)  # rank 0, inactive, has no events


def _recent(rungs: list[tuple[datetime, int]]) -> list[tuple[str, int]]:
    """The last RECENT of each rank in `rungs` (sorted by occurred_at and id), in their order."""
    seen = [0] * len(LADDER)
    kept: list[tuple[str, int]] = []
    for at, rank in reversed(rungs):
        if seen[rank] < RECENT:
            seen[rank] += 1
            kept.append((sortable(at), rank))
            if len(kept) == _RECENT_ALL:
                break  # every rung has its latest
    kept.reverse()
    return kept


class Respanned(NamedTuple):
    engagement: list[tuple[str, str, str, str, str | None]]
    advocacy: list[tuple[str, str, str]]
    resume: Resume


def respan(h: History, last: str, resume: Resume | None = None, since: str = FULL) -> Respanned:
    """A profile's spans and its Resume after `last`, the sort key of its last event.

    With `resume` (the state after resume.last < since, and h the history since `since`) the
    spans start at the instant of `since`, the cut: those before it are unchanged."""
    if resume is None:
        engagement = engagement_spans(h)
        advocacy, sums = _advocacy(h, None, None)
        stated, withheld = None, False
    else:
        cut = instant(since[:27])
        h = h._replace(rungs=[(instant(at), rank) for at, rank in resume.recent] + h.rungs)  # all before h's
        engagement = _engagement(h, cut, resume.stated, resume.withheld)
        advocacy, sums = _advocacy(h, cut, resume)
        stated, withheld = resume.stated, resume.withheld
    if h.statements:
        stated = h.statements[-1][2]
    if h.consents:
        withheld = not h.consents[-1][2]
    return Respanned(engagement, advocacy, Resume(last, stated, withheld, _recent(h.rungs), *sums))


def engagement_spans(h: History) -> list[tuple[str, str, str, str, str | None]]:
    """(start, end, level, observed, stated) spans covering all time; `withheld` while consent is."""
    return _engagement(h, None, None, False)


def _engagement(h: History, cut: datetime | None, stated: str | None,
                withheld: bool) -> list[tuple[str, str, str, str, str | None]]:
    """The spans from `cut` on (all time when None), with `stated` and `withheld` in force before
    h's statements and consents."""
    changes = ({t for t, _ in h.rungs} | {t + WINDOW for t, _ in h.rungs}
               | {t for t, _, _ in h.statements} | {t for t, _, _ in h.consents})
    breaks = sorted(changes) if cut is None else [cut, *sorted(t for t in changes if t > cut)]
    counts = [0] * len(LADDER)
    entering = leaving = said = consented = 0
    values: list[tuple[str, str, str | None]] = [("inactive", "inactive", None)] if cut is None else []
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
    starts: list[datetime | None] = [None, *breaks] if cut is None else [*breaks]
    return [(start, end, *value) for start, end, value in _merge(starts, values)]


def _observed(counts: list[int]) -> str:
    at_or_above = 0
    for rank in range(len(LADDER) - 1, 0, -1):
        at_or_above += counts[rank]
        if at_or_above >= THRESHOLDS[LADDER[rank]]:
            return LADDER[rank]
    return LADDER[0]


def advocacy_spans(h: History) -> list[tuple[str, str, str]]:
    """(start, end, tier) spans covering all time; `withheld` while profiling consent is.

    The tier in a span is what GET /customers/{key} answers inside it: tier(score(…, T)), the
    float fold of advocacy.py. The closed form finds where the exact score crosses a threshold;
    where that fold's rounding could put it on the other side (an instant or a value within its
    error of the line), the fold itself is evaluated, so lists, /stats and the profile agree."""
    return _advocacy(h, None, None)[0]


_Sums = tuple[str | None, int, list[float], float, float, int]  # Resume's fields from `origin` on


def _advocacy(h: History, cut: datetime | None, resume: Resume | None) -> tuple[list[tuple[str, str, str]], _Sums]:
    """The spans from `cut` on (all time when None) and the sums after h's contributions, which
    follow those of `resume` (when given)."""
    if resume is not None and resume.origin is not None:
        origin = instant(resume.origin)
        partials, magnitude, aged, before = list(resume.partials), resume.magnitude, resume.aged, resume.counted
        points = [_Point(origin + timedelta(microseconds=resume.offset), resume.offset, math.fsum(partials),
                         magnitude, aged, before)]
    else:
        if cut is None and not h.contributions and not h.consents:
            return [(BEGINNING, END, "neutral")], (None, 0, [], 0.0, 0.0, 0)
        firsts = [at for at, _ in h.contributions[:1]] + [at for at, _, _ in h.consents[:1]]
        origin = firsts[0] if firsts else cut or _FIRST_INSTANT  # r: keeps the exponents small
        partials, magnitude, aged, before = [], 0.0, 0.0, 0  # Shewchuk partials: S is exact, whatever the order
        points = []  # S and the sums of _Point from each contribution instant on
    counted = before
    for counted, (at, w) in enumerate(h.contributions, start=before + 1):
        offset = (at - origin) // _MICRO
        a = offset / _MICROS_PER_HALF_LIFE
        grown = math.pow(2.0, a)
        _add(partials, w * grown)
        magnitude += abs(w) * grown
        aged += abs(w) * grown * a
        if points and points[-1].at == at:
            points.pop()
        points.append(_Point(at, offset, math.fsum(partials), magnitude, aged, counted))
    breaks: set[datetime] = {point.at for point in points} | {at for at, _, _ in h.consents}
    cut_offset = None if cut is None else (cut - origin) // _MICRO
    for k, point in enumerate(points):
        until = points[k + 1].offset if k + 1 < len(points) else None
        if cut_offset is not None and until is not None and until <= cut_offset:
            continue  # its gap ends before the cut: its crossings are in the spans kept
        for threshold in _THRESHOLDS:
            for m in _crossings(h, point, threshold, until, origin, cut_offset):
                breaks.add(origin + timedelta(microseconds=m))
    ordered = sorted(breaks) if cut is None else [cut, *sorted(t for t in breaks if t > cut)]
    values: list[str] = ["neutral"] if cut is None else []
    consented, k = 0, -1
    withheld = resume is not None and resume.withheld
    for at in ordered:
        while k + 1 < len(points) and points[k + 1].at <= at:
            k += 1
        while consented < len(h.consents) and h.consents[consented][0] <= at:
            withheld = not h.consents[consented][2]
            consented += 1
        values.append("withheld" if withheld else tier(0.0 if k < 0 else _score(h, points[k], origin, at)))
    starts: list[datetime | None] = [None, *ordered] if cut is None else [*ordered]
    sums: _Sums = (None, 0, [], 0.0, 0.0, 0)
    if points:
        sums = (sortable(origin), points[-1].offset, partials, magnitude, aged, counted)
    return _merge(starts, values), sums


class _Point(NamedTuple):
    """From a contribution instant on, until the next, the score is S·2^−A with A = (T−r)/τ.

    score() computes it otherwise: as the float sum of the terms w·2^−(T−t)/τ, each a product and
    a power of a rounded exponent, relative error below (2 + (T−t)/τ)·ε. With g = w·2^a and
    a = (t−r)/τ, those terms' magnitudes sum to 2^−A·((2 + A)·Σ|g| − Σ|g|·a). That bounds how far
    score() can be from the exact score, and S (its terms rounded the same way) from exact."""

    at: datetime
    offset: int  # µs from r
    total: float  # S
    magnitude: float  # Σ|g|
    aged: float  # Σ|g|·a
    counted: int  # how many of h.contributions those are


def _score(h: History, point: _Point, origin: datetime, at: datetime) -> float:
    """The score at `at` from the closed form, or from score() itself when, within twice the two's
    rounding errors, it lies on a threshold: then tier(score()) is what readers answer."""
    age = (at - origin) / HALF_LIFE
    decay = math.pow(2.0, -age)
    value = point.total * decay
    error = 2 * _EPSILON * (abs(value) * (2 + age) + decay * ((4 + age) * point.magnitude - 0.5 * point.aged) + 20)
    if min(abs(value - 20.0), abs(value - 5.0), abs(value + 5.0)) <= error:  # the thresholds of tier()
        return score(h.prefix(point.counted), at)
    return value


def _crossings(h: History, point: _Point, threshold: float, until: int | None, origin: datetime,
               after: int | None = None) -> list[int]:
    """The microseconds (from r, `origin`) in (point, until) at which tier(score()) crosses
    `threshold`: the first one past the instant t* at which the decaying score equals it, or, when
    t* lies within rounding of a microsecond's edge, each one at which score() itself flips.
    `after`: the cut of a respan from a Resume; those up to it may be left out."""
    total = point.total
    if total == 0 or (total > 0) != (threshold > 0) or abs(total) < abs(threshold):
        return []
    micros = _MICROS_PER_HALF_LIFE * math.log2(total / threshold)  # t* − r
    # How far t* may be from where score() flips, in µs: score()'s error over the slope
    # |θ|·ln 2/τ, plus the error of t* itself (S's terms, the logarithm). At t*, 2^−A = θ/S.
    age = micros / _MICROS_PER_HALF_LIFE
    reach = 2 * _EPSILON * (_MICROS_PER_LN2 * (1 + ((4 + age) * point.magnitude - 0.5 * point.aged) / abs(total))
                            + micros)
    whole = math.floor(micros)
    first, last = max(point.offset, math.floor(micros - 2 * reach)), math.floor(micros + 2 * reach) + 1
    if last <= point.offset or (until is not None and first >= until):
        return []  # nothing in this gap: the next contribution comes first
    if reach < micros - whole < 1 - reach:
        # score() is on the exact score's side of the line a microsecond either way
        return [whole + 1] if point.offset < whole + 1 and (until is None or whole + 1 < until) else []
    # Near a microsecond's edge: the microseconds where score() may flip, each evaluated.
    if after is not None and last <= after:
        return []  # every candidate lies before the cut of a respan from a Resume: not wanted
    prefix, flips, before = h.prefix(point.counted), [], True  # it reaches θ before `first`
    for offset in range(max(first, whole - _MAX_PROBE), min(last, whole + _MAX_PROBE) + 1):
        if offset <= point.offset or (until is not None and offset >= until):
            continue
        now = reaches(score(prefix, origin + timedelta(microseconds=offset)), threshold)
        if now != before:
            flips.append(offset)
        before = now
    return flips


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
        if start == _FIRST_INSTANT and kept:
            kept.pop()
        if not kept or kept[-1][1] != value:
            kept.append((start, value))
    texts = [BEGINNING if start is None else sortable(start) for start, _ in kept] + [END]
    return [(texts[k], texts[k + 1], value) for k, (_, value) in enumerate(kept)]

