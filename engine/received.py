"""A raw input as it came in, before any check: its bytes and the path it came by."""
from __future__ import annotations

from datetime import datetime

import msgspec


class Received(msgspec.Struct, frozen=True):
    raw: bytes
    via: str  # "nats:<subject>" or "http"
    received_at: datetime  # the engine's clock (UTC) when it arrived
    # For a JetStream message: the stream's incarnation and the message's sequence in it, so that a
    # message delivered again after its outcome was committed is recognised and not decided twice.
    stream: str | None = None
    seq: int | None = None
