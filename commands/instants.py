"""Instants as the contract writes them: RFC 3339 in UTC, `Z`, microseconds only when non-zero
(msgspec's own text for a UTC datetime, so the log, the export and every answer agree)."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

# RFC 3339 with an offset, as the contract takes it (SPEC §1): up to microseconds.
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def rfc3339(moment: datetime) -> str:
    return msgspec.json.encode(moment.astimezone(UTC)).decode()[1:-1]


class OutOfRange(ValueError):
    """A valid timestamp whose instant in UTC falls outside the calendar (years 1 to 9999)."""


def parse_instant(text: str) -> datetime:
    """An RFC 3339 timestamp with an offset (as a reader or an operator writes one), in UTC.
    ValueError says what is wrong with it, in words that follow the text."""
    if TIMESTAMP.match(text) is None:
        if TIMESTAMP.match(text + "Z") is not None:
            raise ValueError("has no offset: add Z or ±hh:mm")
        raise ValueError("is not an RFC 3339 timestamp with an offset (at most 6 fraction digits), "
                         "e.g. 2026-10-01T12:00:00Z")
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:  # the pattern's shape, not a date: 2026-02-30, 25:00
        raise ValueError("is not a valid date and time, e.g. 2026-10-01T12:00:00Z") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise OutOfRange("is out of range in UTC") from None
