"""engine.logs.Repeats: a message that repeats on every turn of a loop is logged once a while."""
from __future__ import annotations

import logging

from engine.logs import Repeats


def record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)


def test_a_repeated_message_goes_through_once_per_interval_and_says_how_many_were_held() -> None:
    now = [0.0]
    repeats = Repeats(every=10.0, clock=lambda: now[0])
    accept = "socket.accept() out of system resource"
    assert repeats.filter(record(accept))
    assert [repeats.filter(record(accept)) for _ in range(500)] == [False] * 500
    assert repeats.filter(record("another message"))  # each message on its own
    now[0] = 10.0
    again = record(accept)
    assert repeats.filter(again) and again.getMessage() == f"{accept} (500 more like it held back)"
    assert not repeats.filter(record(accept))
