"""The span sweep: the spans of each profile marked dirty, computed from its history (spans.py).

A profile whose new events all sort after its history as last swept (its Resume, in table
span_state, ends before the `since` of its dirty mark) is respanned from the first of them on: the
sweep reads only its events from that instant on, and the runner keeps its spans before the cut
(a "tail"). Any other profile (new, linked, or with an event that sorts into its past) is
respanned from its whole history.

The runner sweeps a key range of the dirty profiles at a time. A large sweep (the end of a rebuild
or of a long catch-up) is shared with a helper process (`python -m projections.sweep`), which
computes the lower half of the keys from the committed read models while the runner computes the
upper half, and leaves its rows in a file of frames (engine/frames.py) that the runner inserts in
its own transaction. Computing spans is Python work: in one process the two halves would take turns
on the GIL.
"""
from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import msgspec

from engine.children import alive, die_with_parent
from engine.frames import read_frame, write_frame
from projections import spans
from projections.store import instant

log = logging.getLogger("engage.projections")

SPAN_FLUSH = 20_000  # engagement span rows handed over together: memory stays flat
SHARED_FROM = 4_000  # dirty profiles from which a sweep is shared with a helper process
KEPT_FROM = 1_000  # contributions from which the runner keeps a profile's (Contributed)
CONTRIBUTIONS_KEPT = 100_000  # contributions kept in all, ~13 MB
FAULT_ENV = "ENGAGE_SWEEP_FAULT"  # tests only: "exit" makes a helper fail before it sweeps

EngagementRow = tuple[str, str, str, str, str, str | None]  # profile, start, end, level, observed, stated
AdvocacyRow = tuple[str, str, str, str]  # profile, start, end, tier


class Swept(msgspec.Struct, array_like=True):
    """A batch of the sweep: spans of profiles respanned whole (their rows were all deleted), tails
    (profile, cut, engagement rows, advocacy rows: the spans from the cut on) and each profile's
    Resume (profile, last, encoded)."""

    engagement: list[EngagementRow] = []
    advocacy: list[AdvocacyRow] = []
    tails: list[tuple[str, str, list[EngagementRow], list[AdvocacyRow]]] = []
    resumes: list[tuple[str, str, bytes]] = []

    def __len__(self) -> int:
        return len(self.engagement) + sum(len(tail[2]) for tail in self.tails)


# The dirty profiles respanned whole: no Resume, or one that does not end before the mark's since.
WHOLE = ("profile IN (SELECT d.profile FROM dirty d LEFT JOIN span_state s ON s.profile = d.profile "
         "WHERE s.last IS NULL OR s.last >= d.since)")

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Swept)


def existing_dirty(con: sqlite3.Connection) -> list[str]:
    """The profiles marked dirty that still exist (linked or erased ones only lose their spans)."""
    return [row[0] for row in con.execute(
        "SELECT d.profile FROM dirty d JOIN profiles p ON p.key = d.profile ORDER BY d.profile")]


def halfway(profiles: list[str], volume: dict[str, int]) -> int:
    """Where to cut `profiles` (sorted, two or more) so that both parts carry about as many events
    and neither is empty. `volume` counts each profile's events since the last sweep (an estimate:
    a profile it lacks counts 1). A sweep's time goes with the events it reads, and customers
    carry more events than identities: halves by profile count took 3.1 s and 2.2 s at 980k events."""
    weights = [volume.get(profile, 1) for profile in profiles]
    half, carried = sum(weights) / 2, 0
    for k, w in enumerate(weights[:-1]):
        carried += w
        if carried >= half:
            return k + 1
    return len(profiles) - 1


class Contributed:
    """The contributions of the profiles with the most of them, as of their last sweep, kept by the
    runner between sweeps: a tier decision within rounding of a threshold sums score() over a
    profile's whole history (spans.History.earlier), and for a heavy profile that read took as
    long as the rest of its sweep. At most `capacity` contributions in all, the profiles swept
    longest ago go first; a profile is kept once it has KEPT_FROM."""

    def __init__(self, capacity: int = CONTRIBUTIONS_KEPT) -> None:
        self._kept: OrderedDict[str, spans.Contributions] = OrderedDict()
        self._size = 0
        self._capacity = capacity

    def get(self, profile: str, counted: int) -> spans.Contributions | None:
        """Its contributions, when they are the `counted` of its Resume."""
        kept = self._kept.get(profile)
        if kept is None or len(kept) != counted:
            return None
        self._kept.move_to_end(profile)
        return kept

    def put(self, profile: str, contributions: spans.Contributions) -> None:
        self.drop(profile)
        if len(contributions) < KEPT_FROM or len(contributions) > self._capacity:
            return
        self._kept[profile] = contributions
        self._size += len(contributions)
        while self._size > self._capacity:
            _, gone = self._kept.popitem(last=False)
            self._size -= len(gone)

    def drop(self, profile: str) -> None:
        gone = self._kept.pop(profile, None)
        if gone is not None:
            self._size -= len(gone)

    def clear(self) -> None:
        self._kept.clear()
        self._size = 0


def swept(con: sqlite3.Connection, profiles: list[str], kept: Contributed | None = None) -> Iterator[Swept]:
    """The spans of `profiles` (sorted, consecutive among the existing dirty ones), in batches.
    One pass over their events grouped by owner: a query per profile cost more than the spans
    themselves. `kept`: the runner's contributions of heavy profiles, used and kept up to date."""
    if not profiles:
        return
    marks = con.execute(
        "SELECT d.profile, d.since, s.last, s.resume FROM dirty d JOIN profiles p ON p.key = d.profile "
        "LEFT JOIN span_state s ON s.profile = d.profile WHERE d.profile >= ? AND d.profile <= ? ORDER BY d.profile",
        (profiles[0], profiles[-1]))
    resumes = {profile: (since, spans.decode_resume(blob)) for profile, since, last, blob in marks
               if last is not None and last < since}
    # Only origins that carried an event have rows, and `origins.owner` is the profile their
    # events belong to now (kept by the runner's _link and _erase), so this join is each history
    # (from the instant of its dirty mark's `since` on, for a profile respanned from its Resume).
    rows = con.execute(
        "SELECT o.owner, e.occurred_at, e.id, e.type, e.rung, e.weight, e.detail "
        "FROM dirty d JOIN profiles p ON p.key = d.profile LEFT JOIN span_state s ON s.profile = d.profile "
        "JOIN origins o ON o.owner = d.profile JOIN events e ON e.oid = o.oid "
        "AND e.occurred_at >= (CASE WHEN s.last < d.since THEN substr(d.since, 1, 27) ELSE '' END) "
        "WHERE d.profile >= ? AND d.profile <= ? ORDER BY o.owner",
        (profiles[0], profiles[-1]))
    groups = itertools.groupby(rows, key=lambda row: row[0])  # both in the same (binary) order
    group = next(groups, None)
    batch = Swept()
    for profile in profiles:
        mine: list[spans.Row] = []
        if group is not None and group[0] == profile:
            mine = [row[1:] for row in group[1]]
            group = next(groups, None)
        _respan(con, batch, profile, mine, resumes.get(profile), kept)
        if len(batch) >= SPAN_FLUSH:
            yield batch
            batch = Swept()
    if batch.engagement or batch.tails or batch.resumes:
        yield batch


def _respan(con: sqlite3.Connection, batch: Swept, profile: str, mine: list[spans.Row],
            resume: tuple[str, spans.Resume] | None, kept: Contributed | None) -> None:
    if resume is None:
        history = spans.History.from_rows(mine)
        spanned = spans.respan(history, history.last)
        batch.engagement += [(profile, *span) for span in spanned.engagement]
        batch.advocacy += [(profile, *span) for span in spanned.advocacy]
        if kept is not None:
            kept.put(profile, history.contributions)
    else:
        since, state = resume
        known = None if kept is None else kept.get(profile, state.counted)
        earlier = _Earlier(con, profile, since, state.counted, known)
        history = spans.History.from_rows(mine, since, earlier)
        spanned = spans.respan(history, max(history.last, state.last), state, since)
        batch.tails.append((profile, since[:27], [(profile, *span) for span in spanned.engagement],
                            [(profile, *span) for span in spanned.advocacy]))
        if kept is not None:
            if earlier.found is None:
                kept.drop(profile)  # what it kept is not this profile's contributions any more
            else:
                kept.put(profile, earlier.found + history.contributions)
    batch.resumes.append((profile, spanned.resume.last, spans.encode_resume(spanned.resume)))


class _Earlier:
    """A profile's contributions before `since` (spans.History.earlier): those the runner kept,
    or read when first asked for."""

    def __init__(self, con: sqlite3.Connection, profile: str, since: str, counted: int,
                 kept: spans.Contributions | None) -> None:
        self._con, self._profile, self._since, self._counted = con, profile, since, counted
        self.found = kept

    def __call__(self) -> spans.Contributions:
        if self.found is None:
            self.found = self._load()
        return self.found

    def _load(self) -> spans.Contributions:
        profile, since, counted = self._profile, self._since, self._counted
        found = [(instant(at), w) for at, event_id, w in self._con.execute(
            "SELECT e.occurred_at, e.id, e.weight FROM origins o JOIN events e ON e.oid = o.oid "
            "WHERE o.owner = ? AND e.occurred_at <= ? AND e.weight IS NOT NULL", (profile, since[:27]))
            if spans.sort_key(at, event_id) < since]
        if len(found) != counted:
            raise RuntimeError(f"the read models hold {len(found)} contributions of {profile} before {since}, "
                               f"its span state {counted}: rebuild them (engage rebuild)")
        return found


class Helper:
    """A helper process sweeping `profiles` from the committed read models at `read_path`."""

    def __init__(self, read_path: Path, profiles: list[str]) -> None:
        self.profiles = profiles
        _remove_stale(read_path)
        self._out = read_path.with_name(f"{read_path.name}.sweep-{os.getpid()}")
        self._out.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "projections.sweep", str(read_path), str(self._out), profiles[0], profiles[-1]],
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(os.getpid()),
        )

    def results(self) -> Iterator[Swept] | None:
        """Its batches once it is done; None when it failed (the caller then sweeps them itself)."""
        code = self._proc.wait()
        if code != 0:
            log.warning("projections: the sweep helper exited with code %s; sweeping its share here", code)
            self._out.unlink(missing_ok=True)
            return None
        return self._read()

    def _read(self) -> Iterator[Swept]:
        try:
            with self._out.open("rb") as frames:
                while (frame := read_frame(frames)) is not None:
                    yield _decoder.decode(frame)
        finally:
            self._out.unlink(missing_ok=True)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.unlink(missing_ok=True)


def _remove_stale(read_path: Path) -> None:
    """Rows left by the helper of a runner that was killed mid-sweep (the file is named after the
    runner's pid): nothing reads them any more."""
    for left in read_path.parent.glob(f"{read_path.name}.sweep-*"):
        pid = left.name.rpartition("-")[2]
        if pid.isdigit() and not alive(int(pid)):
            left.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m projections.sweep READ OUT FIRST LAST`: what `Helper` starts."""
    read_path, out, first, last = argv if argv is not None else sys.argv[1:]
    if os.environ.get(FAULT_ENV) == "exit":
        return 3
    con = sqlite3.connect(Path(read_path).absolute().as_uri() + "?mode=ro", uri=True, timeout=30)
    try:
        profiles = [p for p in existing_dirty(con) if first <= p <= last]
        with open(out, "wb") as frames:
            for batch in swept(con, profiles):
                write_frame(frames, _encoder.encode(batch))
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
