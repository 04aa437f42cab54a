"""The reads that GET /customers/{key}, GET /customers?marketing= and GET /stats make go through
indexes, in read models folded live and in bulk (a rebuild builds its deferred indexes at the end).
A profile's cases were found by scanning every case (2.8 ms a request at 1M events, growing with the
log), and counting the spans that contain a past instant read a table row per span (60 ms at 1M;
20 ms from the index alone)."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from projections.counts import KINDS, containing_sql
from projections.reads import (
    CASE_STATES_OF,
    CASES_BY_STATE,
    CONSENT_INDEX,
    ENGAGEMENT_AT,
    FIRST_RESPONSE_BREACHED,
    LATEST_CONSENT,
    RESOLUTION_BREACHED,
    Reads,
)
from projections.store import drop_indexes
from tests.integration.test_sweep import rebuilt, written


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return written(tmp_path_factory.mktemp("plans") / "log.sqlite", 2000, customers=100, seed=5)


def folded(log_path: Path, into: Path, *, bulk: bool) -> sqlite3.Connection:
    """The read models of the whole log, folded in pages as a catch-up does, opened read-only."""
    rebuilt(log_path, into, bulk=bulk)
    return sqlite3.connect(f"file:{into}?mode=ro", uri=True)


@pytest.mark.parametrize("bulk", [False, True])
def test_the_case_reads_of_a_profile_and_of_stats_use_indexes(log_path: Path, tmp_path: Path, bulk: bool) -> None:
    con = folded(log_path, tmp_path / "read.sqlite", bulk=bulk)
    try:
        assert con.execute("SELECT COUNT(*) FROM cases").fetchone()[0] > 20  # there is something to scan
        t = "2026-10-01T00:00:00.000000Z"
        for sql, params in [(CASE_STATES_OF.format(marks="?,?"), ("c-1", "c-2")), (CASES_BY_STATE, ()),
                            (FIRST_RESPONSE_BREACHED, (t,)), (RESOLUTION_BREACHED, (t,))]:
            steps = [row[3] for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            on_cases = [step for step in steps if " cases" in step]
            assert on_cases and all("INDEX" in step for step in on_cases), (sql, steps)
    finally:
        con.close()


@pytest.mark.parametrize("bulk", [False, True])
def test_a_profiles_engagement_and_last_seen_are_looked_up_not_scanned(log_path: Path, tmp_path: Path,
                                                                       bulk: bool) -> None:
    """GET /customers/{key} reads engagement from the span holding T (by the profile's key) and
    last_seen from the events of its origins (by origin, then instant): neither scans a table."""
    con = folded(log_path, tmp_path / "read.sqlite", bulk=bulk)
    try:
        t = "2026-10-01T00:00:00.000000Z"
        keys = tuple(key for (key,) in con.execute("SELECT key FROM profiles ORDER BY key LIMIT 2"))
        sql, params = ENGAGEMENT_AT.format(marks="?,?"), (t, t, t, *keys)
        steps = [row[3] for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        for table in (" p ", " s ", " e ", " o "):
            on_table = [step for step in steps if table in f"{step} "]
            assert on_table and all("INDEX" in step or "PRIMARY KEY" in step for step in on_table), (table, steps)
        found = con.execute(sql, params).fetchall()
        assert len(found) == 2 and all(row[1] is not None and row[4] is not None for row in found), found
    finally:
        con.close()


@pytest.mark.parametrize("bulk", [False, True])
def test_counting_the_spans_that_contain_an_instant_reads_only_an_index(log_path: Path, tmp_path: Path,
                                                                         bulk: bool) -> None:
    """/stats far from the counts' anchor counts the spans containing T: for a T in the past that
    is most spans, so the index must carry the values counted (no table row per span)."""
    con = folded(log_path, tmp_path / "read.sqlite", bulk=bulk)
    try:
        for kind in KINDS:
            for t in ("2026-06-01T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z"):
                steps = [row[3] for row in con.execute(f"EXPLAIN QUERY PLAN {containing_sql(kind)}", (t, t))]
                on_spans = [step for step in steps if f" {kind.table} " in f"{step} "]
                assert on_spans and all("COVERING INDEX" in step for step in on_spans), (kind, steps)
    finally:
        con.close()


@pytest.mark.parametrize("bulk", [False, True])
def test_the_marketing_filter_reads_only_the_consents(log_path: Path, tmp_path: Path, bulk: bool) -> None:
    con = folded(log_path, tmp_path / "read.sqlite", bulk=bulk)
    try:
        assert con.execute("SELECT COUNT(*) FROM events WHERE type='consent.changed'").fetchone()[0] > 10
        sql = f"SELECT p.key FROM profiles p WHERE ({LATEST_CONSENT}) = 'marketing:granted'"
        steps = [row[3] for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", ("marketing:%", "2027-01-01"))]
        assert any(f"INDEX {CONSENT_INDEX} " in step for step in steps), steps
    finally:
        con.close()


async def test_the_marketing_filter_answers_the_same_while_a_bulk_fold_lacks_the_consent_index(
        log_path: Path, tmp_path: Path) -> None:
    """Reads answer from what a bulk catch-up has folded so far, before its indexes are built."""
    path = tmp_path / "read.sqlite"
    folded(log_path, path, bulk=True).close()
    reads = Reads(path, log_path)
    await reads.open()
    try:
        async def granted() -> tuple[list[str], str | None]:
            items, cursor = await reads.customers(datetime(2027, 1, 1, tzinfo=UTC), level=None, tier=None,
                                                  after="", limit=1000, marketing=True)
            return [item["customer"] for item in items], cursor

        indexed = await granted()
        assert len(indexed[0]) >= 3
        with sqlite3.connect(path) as con:
            drop_indexes(con, names=(CONSENT_INDEX,))
        assert await granted() == indexed
    finally:
        await reads.close()
