"""Instants as the contract writes them: RFC 3339 in UTC, `Z`, microseconds only when non-zero
(msgspec's own text for a UTC datetime, so the log, the export and every answer agree)."""
from __future__ import annotations

from datetime import UTC, datetime

import msgspec


def rfc3339(moment: datetime) -> str:
    return msgspec.json.encode(moment.astimezone(UTC)).decode()[1:-1]
