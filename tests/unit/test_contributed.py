"""The runner's memory of heavy profiles' contributions (projections/sweep.py, Contributed): it
answers only for the count a profile's Resume says, keeps only profiles with KEPT_FROM or more,
and stays within its capacity by letting go of the profiles swept longest ago."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from projections import sweep
from projections.spans import Contributions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def contributions(n: int) -> Contributions:
    return [(T0 + timedelta(minutes=k), 1.0) for k in range(n)]


@pytest.fixture(autouse=True)
def kept_from_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "KEPT_FROM", 3)


def test_it_answers_for_the_count_of_the_resume_only() -> None:
    kept = sweep.Contributed(capacity=100)
    kept.put("c-1", contributions(5))
    assert kept.get("c-1", 5) == contributions(5)
    assert kept.get("c-1", 6) is None  # swept since by someone else: not these any more
    assert kept.get("c-2", 5) is None


def test_light_profiles_are_not_kept() -> None:
    kept = sweep.Contributed(capacity=100)
    kept.put("c-light", contributions(2))
    assert kept.get("c-light", 2) is None


def test_the_profiles_swept_longest_ago_go_first() -> None:
    kept = sweep.Contributed(capacity=10)
    kept.put("c-a", contributions(4))
    kept.put("c-b", contributions(4))
    assert kept.get("c-a", 4) is not None  # c-a is now the most recently used
    kept.put("c-c", contributions(4))  # 12 > 10: c-b goes
    assert kept.get("c-b", 4) is None
    assert kept.get("c-a", 4) is not None and kept.get("c-c", 4) is not None
    kept.put("c-huge", contributions(11))  # more than the whole capacity: not kept, nothing evicted
    assert kept.get("c-huge", 11) is None and kept.get("c-a", 4) is not None


def test_a_profile_put_again_replaces_what_was_kept() -> None:
    kept = sweep.Contributed(capacity=10)
    kept.put("c-a", contributions(4))
    kept.put("c-a", contributions(6))
    kept.put("c-b", contributions(4))  # 6 + 4: both fit, the first 4 of c-a no longer count
    assert kept.get("c-a", 6) is not None and kept.get("c-b", 4) is not None
    kept.drop("c-a")
    kept.put("c-c", contributions(6))
    assert kept.get("c-b", 4) is not None and kept.get("c-c", 6) is not None
