"""Instants as the contract writes them: RFC 3339 in UTC, `Z`, microseconds only when non-zero
(msgspec's own text for a UTC datetime, so the log, the export and every answer agree)."""
from __future__ import annotations

from datetime import UTC, datetime

import msgspec


def rfc3339(moment: datetime) -> str:
    return msgspec.json.encode(moment.astimezone(UTC)).decode()[1:-1]


class OutOfRange(ValueError):
    """A valid timestamp whose instant in UTC falls outside the calendar (years 1 to 9999)."""


def parse_instant(text: str) -> datetime:
    """An RFC 3339 timestamp with an offset (as a reader or an operator writes one), in UTC.
    ValueError says what is wrong with it, in words that follow the text."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError("is not an RFC 3339 timestamp, e.g. 2026-10-01T12:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("has no offset: add Z or ±hh:mm")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise OutOfRange("is out of range in UTC") from None
