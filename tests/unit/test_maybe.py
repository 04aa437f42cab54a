"""engine/maybe.py: never "absent" for a key it was given, rarely "maybe" for one it was not."""
from __future__ import annotations

import pytest

from engine.maybe import Maybe


def test_every_key_added_may_be_held() -> None:
    added = [f"community:{n:08d}-{n * 7919:08x}" for n in range(20_000)]
    maybe = Maybe(added[:10_000], bits=1 << 16)  # a small filter, so that bits are shared a lot
    maybe.add(added[10_000:])
    assert all(maybe.may_hold(key) for key in added)
    assert maybe.only_possible(added) == added


def test_keys_never_added_are_mostly_absent() -> None:
    maybe = Maybe((f"id-{n}" for n in range(10_000)), bits=1 << 20)
    others = [f"other-{n}" for n in range(10_000)]
    # Two bits a key among 2**20 with 10,000 keys: ~0.04 % false positives expected (~4 of these).
    assert len(maybe.only_possible(others)) < 100
    assert maybe.only_possible([*others[:3], "id-5"])[-1:] == ["id-5"]


def test_an_empty_filter_holds_nothing() -> None:
    assert Maybe().only_possible(["a", "", "é"]) == []


@pytest.mark.parametrize("bits", [0, 4, 1000, (1 << 20) + 1])
def test_its_size_is_a_power_of_two(bits: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Maybe(bits=bits)
