"""Where a shared span sweep is cut (projections/sweep.halfway): both parts carry about as many
events, and neither is empty."""
from __future__ import annotations

from projections.sweep import halfway


def test_equal_volumes_are_cut_in_the_middle() -> None:
    profiles = [f"p{k}" for k in range(10)]
    assert halfway(profiles, {p: 3 for p in profiles}) == 5


def test_the_cut_follows_the_events_not_the_profile_count() -> None:
    # One heavy profile first carries as many events as the nine after it.
    profiles = ["a", *(f"b{k}" for k in range(9))]
    volume = {"a": 9, **{p: 1 for p in profiles[1:]}}
    assert halfway(profiles, volume) == 1
    # The heavy one last: everything before it goes to the first part.
    profiles = [*(f"a{k}" for k in range(9)), "z"]
    volume = {"z": 9, **{p: 1 for p in profiles[:-1]}}
    assert halfway(profiles, volume) == 9


def test_profiles_without_a_count_weigh_one() -> None:
    assert halfway(["a", "b", "c", "d"], {}) == 2
    assert halfway(["a", "b", "c", "d"], {"d": 2}) == 3  # weights 1,1,1,2: the first part takes 3 of 5


def test_neither_part_is_ever_empty() -> None:
    assert halfway(["a", "b"], {"a": 100}) == 1
    assert halfway(["a", "b"], {"b": 100}) == 1
    assert halfway(["a", "b", "c"], {"c": 100}) == 2
