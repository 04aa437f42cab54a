"""Sortable instants: the fold writes them from the log's text without parsing it."""
from __future__ import annotations

from datetime import datetime

import pytest

from commands.instants import rfc3339
from projections.store import sortable, sortable_text


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-10-01T12:00:00Z", "2026-10-01T12:00:00.000000Z"),
    ("2026-10-01T12:00:00.220000Z", "2026-10-01T12:00:00.220000Z"),
    ("2026-10-01T12:00:00.000001Z", "2026-10-01T12:00:00.000001Z"),
    # Not as the log writes them: parsed, so the answer is still the instant's.
    ("2026-10-01T12:00:00.22Z", "2026-10-01T12:00:00.220000Z"),
    ("2026-10-01T14:00:00+02:00", "2026-10-01T12:00:00.000000Z"),
])
def test_sortable_text_is_the_sortable_instant(text: str, expected: str) -> None:
    assert sortable_text(text) == expected


@pytest.mark.parametrize("moment", ["2026-10-01T12:00:00+00:00", "2026-10-01T12:00:00.5+00:00",
                                    "1999-12-31T23:59:59.999999+00:00"])
def test_what_the_log_writes_reads_back_as_sortable(moment: str) -> None:
    instant = datetime.fromisoformat(moment)
    assert sortable_text(rfc3339(instant)) == sortable(instant)
