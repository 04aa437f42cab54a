"""Counts for the dashboard's ladder: per rung, how many profiles are on it, how many were observed
there and how many stated it, as of T (one indexed query each over the engagement spans).

Profiles whose profiling consent is withheld count as `withheld` only: nothing is inferred of them.
"""
from __future__ import annotations

from datetime import datetime

import aiosqlite

from projections.store import sortable


async def ladder(db: aiosqlite.Connection, as_of: datetime) -> dict[str, dict[str, int]]:
    """{"level": {rung or "withheld": n}, "observed": {rung: n}, "stated": {rung: n}}."""
    t = sortable(as_of)
    answer: dict[str, dict[str, int]] = {}
    for column in ("level", "observed", "stated"):
        condition = "" if column == "level" else f" AND level != 'withheld' AND {column} IS NOT NULL"
        async with db.execute(f"SELECT {column}, COUNT(*) FROM engagement_spans WHERE end > ? AND start <= ?"
                              f"{condition} GROUP BY {column}", (t, t)) as cursor:
            answer[column] = {value: n for value, n in await cursor.fetchall()}
    return answer
