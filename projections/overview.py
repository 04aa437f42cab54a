"""Counts for the dashboard's ladder: per rung, how many profiles are on it, how many were observed
there and how many stated it, as of T (projections/counts.py: cheap near the present).

Profiles whose profiling consent is withheld count as `withheld` only: nothing is inferred of them.
"""
from __future__ import annotations

from datetime import datetime

import aiosqlite

from projections.counts import counts_at


async def ladder(db: aiosqlite.Connection, as_of: datetime) -> dict[str, dict[str, int]]:
    """{"level": {rung or "withheld": n}, "observed": {rung: n}, "stated": {rung: n}}."""
    counted = await counts_at(db, as_of)
    return {"level": counted["level"], "observed": counted["observed"], "stated": counted["stated"]}
