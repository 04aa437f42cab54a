"""Counts of profiles per level, tier, observed and stated rung as of any T, cheap near "now".

Statistics count the spans that contain T; for T = now that is one span per profile, so the cost
grew with the number of profiles. Instead the runner keeps the counts at an anchor instant C (in
the same transaction as the spans it writes), and moves C towards the present as it runs. Spans
of one profile tile all time, so between C and T the counts change only at span boundaries:

    count(T)[v] = count(C)[v] + #{spans of value v starting in (C, T]} − #{ending in (C, T]}

(and the mirror image for T < C). Near C that is a few indexed rows; for a T far from C the
spans containing T are counted directly, as before.
"""
from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import aiosqlite

from projections.store import BEGINNING, sortable


class Kind(NamedTuple):
    name: str
    table: str
    column: str
    condition: str  # on the span rows counted


KINDS = (
    Kind("level", "engagement_spans", "level", "1"),
    # Observed and stated rungs of the profiles not withheld (nothing is inferred of those).
    Kind("observed", "engagement_spans", "observed", "level != 'withheld'"),
    Kind("stated", "engagement_spans", "stated", "level != 'withheld' AND stated IS NOT NULL"),
    Kind("tier", "advocacy_spans", "tier", "1"),
)
NEAR = timedelta(days=2)  # beyond this distance from C, counting the spans containing T is cheaper


Delta = Counter[tuple[str, str]]  # (kind, value) -> change


def create(con: sqlite3.Connection) -> None:
    """The counts at the beginning of time when there are none yet (an existing read model gets
    them from its spans), in one transaction. The tables are in store.SCHEMA."""
    con.execute("BEGIN IMMEDIATE")
    try:
        if con.execute("SELECT 1 FROM span_anchor").fetchone() is None:
            con.execute("INSERT INTO span_anchor VALUES (1, ?)", (BEGINNING,))
            add(con, containing(con, BEGINNING, "1", ()))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:  # a failed COMMIT (a full disk) may have ended it: keep its error
            con.execute("ROLLBACK")
        raise


def anchor(con: sqlite3.Connection) -> str:
    return str(con.execute("SELECT instant FROM span_anchor").fetchone()[0])


def containing_sql(kind: Kind, where: str = "1") -> str:
    """Counts of `kind` among the spans that contain T (parameters: T, T, then those of `where`)."""
    return (f"SELECT {kind.column}, COUNT(*) FROM {kind.table} WHERE start <= ? AND end > ? AND {kind.condition} "
            f"AND {where} GROUP BY {kind.column}")


def containing(con: sqlite3.Connection, t: str, where: str, params: Iterable[Any]) -> Delta:
    """Counts of the spans that contain t, among the rows `where` selects (profile = ?, …)."""
    counts: Delta = Counter()
    for kind in KINDS:
        for value, n in con.execute(containing_sql(kind, where), (t, t, *params)):
            counts[(kind.name, value)] += n
    return counts


def add(con: sqlite3.Connection, delta: Delta, sign: int = 1) -> None:
    con.executemany("INSERT INTO span_counts VALUES (?,?,?) ON CONFLICT (kind, value) DO UPDATE SET n = n + excluded.n",
                    [(kind, value, sign * n) for (kind, value), n in delta.items() if n])


def move(con: sqlite3.Connection, to: datetime) -> None:
    """Carry the counts from the anchor to `to` (forward only), by the boundaries in between."""
    c, t = anchor(con), sortable(to)
    if t <= c:
        return
    add(con, _between(con, c, t))
    con.execute("UPDATE span_anchor SET instant = ?", (t,))


def _between(con: sqlite3.Connection, lo: str, hi: str) -> Delta:
    delta: Delta = Counter()
    for kind in KINDS:
        for edge, sign in (("start", 1), ("end", -1)):
            for value, n in con.execute(
                    f"SELECT {kind.column}, COUNT(*) FROM {kind.table} WHERE {edge} > ? AND {edge} <= ? "
                    f"AND {kind.condition} GROUP BY {kind.column}", (lo, hi)):
                delta[(kind.name, value)] += sign * n
    return delta


def _near_statement() -> str:
    """One statement (one snapshot of the runner's commits): the counts at the anchor C, plus the
    boundaries between C and :t, signed by the direction from C to :t."""
    parts = ["SELECT kind, value, n FROM span_counts"]
    for kind in KINDS:
        for edge, edge_sign in (("start", 1), ("end", -1)):
            parts.append(
                f"SELECT '{kind.name}', {kind.column}, "
                f"{edge_sign} * (CASE WHEN :t >= a.c THEN 1 ELSE -1 END) * COUNT(*) FROM {kind.table}, a "
                f"WHERE {edge} > min(a.c, :t) AND {edge} <= max(a.c, :t) AND {kind.condition} "
                f"GROUP BY {kind.column}")
    return "WITH a AS (SELECT instant AS c FROM span_anchor) " + " UNION ALL ".join(parts)


_NEAR = _near_statement()


async def counts_at(db: aiosqlite.Connection, as_of: datetime) -> dict[str, dict[str, int]]:
    """{kind: {value: n}} as of T."""
    t = sortable(as_of)
    answer: dict[str, dict[str, int]] = {kind.name: {} for kind in KINDS}
    try:
        async with db.execute("SELECT instant FROM span_anchor") as cur:
            row = await cur.fetchone()
    except sqlite3.OperationalError:  # a read model of an earlier version, served read-only
        row = None
    if row is None or abs(as_of - datetime.fromisoformat(str(row[0]))) > NEAR:
        for kind in KINDS:
            async with db.execute(containing_sql(kind), (t, t)) as cur:
                answer[kind.name] = {value: n for value, n in await cur.fetchall()}
        return answer
    totals: Delta = Counter()
    async with db.execute(_NEAR, {"t": t}) as cur:
        for kind_name, value, n in await cur.fetchall():
            totals[(kind_name, value)] += n
    for (kind_name, value), n in sorted(totals.items()):
        if n:
            answer[kind_name][value] = n
    return answer
