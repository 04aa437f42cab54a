"""What deciding a touchpoint can end in (SPEC §2): errors are data, returned and stored, never raised."""
from __future__ import annotations

from typing import Literal, get_args

import msgspec

Reason = Literal[
    "too_large",
    "malformed",
    "unknown_type",
    "schema",
    "future_timestamp",
    "duplicate_conflict",
    "erased",
    "unknown_case",
    "case_exists",
    "invalid_transition",
]

REASONS: tuple[Reason, ...] = get_args(Reason)  # in the order of SPEC §2's checks


class Rejected(msgspec.Struct, frozen=True):
    reason: Reason
    detail: str  # the field path or the rule, for the producer


class Accepted(msgspec.Struct, frozen=True):
    position: int


class Duplicate(msgspec.Struct, frozen=True):
    position: int  # where the original sits in the log


class Redelivered(msgspec.Struct, frozen=True):
    """Not an outcome of SPEC §2 but of the transport: this very message (stream, sequence) was
    decided and committed before, so nothing is decided, appended or kept again."""

    seq: int


Outcome = Accepted | Duplicate | Rejected | Redelivered
