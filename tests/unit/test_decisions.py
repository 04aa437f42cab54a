"""commands.decisions.decide, idempotency and erasure (SPEC §2, §6), as a table over a view of the log."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from commands.cases import Case
from commands.decisions import decide
from commands.outcomes import Duplicate, Rejected
from commands.parsing import impersonal_digest, parse
from commands.touchpoints import Touchpoint
from tests.samples import ev


class View:
    def __init__(self, logged: dict[str, tuple[bytes, int]], erased: set[str]) -> None:
        self._logged, self._erased = logged, erased

    def logged(self, event_id: str) -> tuple[bytes, int] | None:
        return self._logged.get(event_id)

    def case(self, case: str) -> Case | None:
        return None

    def is_erased(self, customer: str) -> bool:
        return customer in self._erased


def vote(customer: str = "c-1") -> Touchpoint[Any]:
    tp = parse(ev(1, "idea.voted", {"idea": "i"}, customer=customer), datetime(2026, 10, 2, tzinfo=UTC))
    assert not isinstance(tp, Rejected)
    return tp


@pytest.mark.parametrize(("logged", "erased", "expected"), [
    ({}, set(), None),  # new: accepted
    ({"e-1": (b"same", 7)}, set(), Duplicate(7)),
    ({"e-1": (b"other", 7)}, set(), "duplicate_conflict"),
    # after an erasure, compared without the personal fields (a vote has none: its whole content)
    ({"e-1": (impersonal_digest(vote()), 7)}, {"c-1"}, Duplicate(7)),
    ({"e-1": (impersonal_digest(vote("c-2")), 7)}, {"c-1"}, "duplicate_conflict"),
    # shredded by a log before impersonal digests: no longer comparable, a duplicate whatever it carries
    ({"e-1": (b"", 7)}, {"c-1"}, Duplicate(7)),
    ({}, {"c-1"}, "erased"),
    ({"e-1": (b"other", 7)}, {"c-1"}, "duplicate_conflict"),  # idempotency comes before erasure (§2)
])
def test_idempotency_then_erasure(logged: dict[str, tuple[bytes, int]], erased: set[str], expected: Any) -> None:
    verdict = decide(vote(), b"same", View(logged, erased))
    assert (verdict.reason if isinstance(verdict, Rejected) else verdict) == expected


def test_a_content_digest_that_begins_like_an_impersonal_one_is_still_compared_whole() -> None:
    """One SHA-256 in 256 begins with the impersonal digests' first byte: it is 32 bytes, not 33,
    and an exact re-send of such an event is a duplicate (found by a probe: duplicate_conflict)."""
    digest = b"\x01" + bytes(range(31))
    assert decide(vote(), digest, View({"e-1": (digest, 7)}, set())) == Duplicate(7)
    conflict = decide(vote(), digest, View({"e-1": (b"\x01" + digest, 7)}, set()))
    assert isinstance(conflict, Rejected) and conflict.reason == "duplicate_conflict"
