"""The answer of POST /events (SPEC §2) and the limits of its body, in a module of its own: the API
encodes the answer and enforces the limits, `engage emit` keeps to the limits and decodes the
answer, without emit loading the web framework."""
from __future__ import annotations

import msgspec

from commands.parsing import MAX_BYTES

MAX_EVENTS = 1000
# A full batch of 1,000 events of 64 KiB each, plus the array's punctuation and line breaks.
MAX_BODY = MAX_EVENTS * (MAX_BYTES + 2) + 2


class RejectedItem(msgspec.Struct):
    index: int
    id: str | None
    reason: str
    detail: str


class IngestAnswer(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]
