"""The answer of POST /events (SPEC §2), in a module of its own: the API encodes it and `engage
emit` decodes it, without emit loading the web framework."""
from __future__ import annotations

import msgspec


class RejectedItem(msgspec.Struct):
    index: int
    id: str | None
    reason: str
    detail: str


class IngestAnswer(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]
