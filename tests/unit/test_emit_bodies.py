"""engage emit's HTTP requests (ops/emit.http_bodies): at most 1,000 lines and the engine's body
limit each; a line that alone is over the limit is counted, not sent, and the rest go on."""
from __future__ import annotations

from ops.answers import MAX_BODY, MAX_EVENTS
from ops.emit import http_bodies


def test_a_request_carries_at_most_the_engines_count_of_events() -> None:
    lines = [b'{"n": %d}' % n for n in range(2 * MAX_EVENTS + 1)]
    bodies = list(http_bodies(lines))
    assert [len(batch) for batch, _ in bodies] == [MAX_EVENTS, MAX_EVENTS, 1]
    assert [line for batch, _ in bodies for line in batch] == lines
    assert all(skipped == 0 for _, skipped in bodies)


def test_lines_over_64_kib_are_sent_in_bodies_within_the_engines_limit() -> None:
    """1,000 lines just over an event's 64 KiB are each a too_large reject the engine keeps; in one
    body they would be over its limit, and it would answer 413 for all of them."""
    line = b"x" * (64 * 1024 + 100)
    bodies = list(http_bodies([line] * MAX_EVENTS))
    assert sum(len(batch) for batch, _ in bodies) == MAX_EVENTS
    assert len(bodies) == 2
    assert all(sum(len(x) + 1 for x in batch) <= MAX_BODY for batch, _ in bodies)


def test_a_line_alone_over_the_limit_is_counted_and_the_others_are_sent() -> None:
    lines = [b"a" * 10, b"b" * 30, b"c" * 10, b"d" * 30, b"e" * 30, b"f" * 5]
    # (a batch, the lines skipped while it was gathered)
    assert list(http_bodies(lines, count=3, limit=21)) == [([b"a" * 10], 1), ([b"c" * 10, b"f" * 5], 2)]
    assert list(http_bodies([b"z" * 30], limit=21)) == [([], 1)]  # nothing sendable: still counted


def test_blank_lines_and_surrounding_whitespace_are_not_sent() -> None:
    assert list(http_bodies([b"  {}  \r", b"", b"   ", b"[1]"])) == [([b"{}", b"[1]"], 0)]
