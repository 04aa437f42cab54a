"""Maybe: which keys a table may hold, kept in memory so a batch asks SQLite only about those.

Most inputs are new events of customers never erased: the writer looked each one's id up in
`event_ids` and each customer up in `erased` to be told "absent". A Bloom filter over what the
table holds says "absent" for certain, in memory; only the keys it may hold (duplicates, erased
customers, and a few false positives) are looked up. Measured on the ingest bench's 100,000
inputs, in-process: the two look-ups were ~6 % of `Log.commit`'s time.

It never says "absent" for a key the table holds, as long as every key written to the table is
added (a key added for a transaction that then rolls back is only a false positive: a look-up
finds nothing, which is the right answer). The log's writer builds it from the table at its
first commit (~1 s a million ids), and only that writer, which holds the data directory's lock,
writes those tables.

Two bits a key, from one hash: with the default 2**26 bits (8 MiB), ~0.1 % false positives at a
million keys, ~7 % at ten million (still right, only slower). `hash()` is salted per process,
which is fine: the filter lives and dies with it, and keys crafted to collide only cost look-ups.
"""
from __future__ import annotations

from collections.abc import Iterable

BITS = 1 << 26


class Maybe:
    def __init__(self, keys: Iterable[str] = (), bits: int = BITS) -> None:
        if bits & (bits - 1) or bits < 8:
            raise ValueError("bits must be a power of two, at least 8")
        self._bits = bytearray(bits >> 3)
        self._shift = bits.bit_length() - 1
        self._mask = bits - 1
        self.add(keys)

    def add(self, keys: Iterable[str]) -> None:
        bits, shift, mask = self._bits, self._shift, self._mask
        for key in keys:
            h = hash(key)
            low, high = h & mask, (h >> shift) & mask
            bits[low >> 3] |= 1 << (low & 7)
            bits[high >> 3] |= 1 << (high & 7)

    def may_hold(self, key: str) -> bool:
        h = hash(key)
        low, high = h & self._mask, (h >> self._shift) & self._mask
        return bool(self._bits[low >> 3] & (1 << (low & 7))) and bool(self._bits[high >> 3] & (1 << (high & 7)))

    def only_possible(self, keys: Iterable[str]) -> list[str]:
        """Those of `keys` the table may hold, in order: the ones worth looking up."""
        return [key for key in keys if self.may_hold(key)]
