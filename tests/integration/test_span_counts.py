"""The counts kept at an anchor instant (projections/counts.py) give exactly what counting the
spans that contain T gives, for T on either side of the anchor, near and far, page after page of a
history with links, erasures, consent changes and late arrivals."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite

from engine.log import Log
from engine.received import Received
from ops.bench.events import generate
from projections import counts
from projections.counts import KINDS, counts_at
from projections.projector import Projector
from projections.store import sortable

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)  # the generated events lie in the 60 days before it


def direct(path: Path, as_of: datetime) -> dict[str, dict[str, int]]:
    con = sqlite3.connect(path)
    t = sortable(as_of)
    try:
        return {kind.name: dict(con.execute(
            f"SELECT {kind.column}, COUNT(*) FROM {kind.table} WHERE end > ? AND start <= ? AND {kind.condition} "
            f"GROUP BY {kind.column}", (t, t)).fetchall()) for kind in KINDS}
    finally:
        con.close()


async def answers(path: Path, instants: list[datetime]) -> list[dict[str, dict[str, int]]]:
    async with aiosqlite.connect(path) as db:
        return [await counts_at(db, t) for t in instants]


async def test_anchored_counts_equal_the_spans_containing_t(tmp_path: Path) -> None:
    workload = generate(3000, customers=150, seed=9, anchor=ANCHOR)
    log = Log(tmp_path / "log.sqlite")
    log.commit([Received(raw, "test", ANCHOR) for raw in workload.lines])
    records = log.records(0, 10_000)
    log.close()
    now = ANCHOR - timedelta(days=20)  # the runner's clock, inside the history
    projector = Projector(tmp_path / "read.sqlite", clock=lambda: now)
    near = [now + timedelta(hours=h) for h in (-47, -12, -1, 0, 1, 5, 30, 47)]
    far = [now - timedelta(days=40), now + timedelta(days=10), now + timedelta(days=200)]
    try:
        for start in range(0, len(records), 250):  # live-like pages, each swept
            projector.apply(records[start:start + 250])
            now += timedelta(hours=3)  # the anchor moves on as the runner runs
            got = await answers(tmp_path / "read.sqlite", near + far)
            for t, answer in zip(near + far, got, strict=True):
                assert answer == direct(tmp_path / "read.sqlite", t), (start, t)
        assert counts.anchor(projector.con) == sortable(now - timedelta(hours=3))
        levels = sum(got[3]["level"].values())
        assert levels == projector.con.execute("SELECT COUNT(*) FROM profiles").fetchone()[0]  # one span each
    finally:
        projector.close()


async def test_an_existing_read_model_gets_its_counts_when_opened(tmp_path: Path) -> None:
    workload = generate(800, customers=60, seed=4, anchor=ANCHOR)
    log = Log(tmp_path / "log.sqlite")
    log.commit([Received(raw, "test", ANCHOR) for raw in workload.lines])
    projector = Projector(tmp_path / "read.sqlite", clock=lambda: ANCHOR)
    projector.apply(log.records(0, 10_000))
    log.close()
    for table in ("span_counts", "span_anchor"):  # as a read model of the previous version
        projector.con.execute(f"DROP TABLE {table}")
    projector.close()
    Projector(tmp_path / "read.sqlite", clock=lambda: ANCHOR).close()
    instants = [ANCHOR - timedelta(days=d) for d in (0, 1, 30)]
    got = await answers(tmp_path / "read.sqlite", instants)
    assert got == [direct(tmp_path / "read.sqlite", t) for t in instants]


async def test_a_read_model_of_an_earlier_version_served_read_only_counts_directly(tmp_path: Path) -> None:
    workload = generate(500, customers=40, seed=6, anchor=ANCHOR)
    log = Log(tmp_path / "log.sqlite")
    log.commit([Received(raw, "test", ANCHOR) for raw in workload.lines])
    projector = Projector(tmp_path / "read.sqlite", clock=lambda: ANCHOR)
    projector.apply(log.records(0, 10_000))
    log.close()
    for table in ("span_counts", "span_anchor"):  # no runner will come to add them: read-only
        projector.con.execute(f"DROP TABLE {table}")
    projector.close()
    got = await answers(tmp_path / "read.sqlite", [ANCHOR, ANCHOR - timedelta(days=10)])
    assert got == [direct(tmp_path / "read.sqlite", t) for t in (ANCHOR, ANCHOR - timedelta(days=10))]
    assert sum(got[0]["level"].values()) > 0
