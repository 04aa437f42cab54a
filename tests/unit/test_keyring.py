"""KeyRing: one current key per owner, whether it is found by a batch's load() or one by one."""
from __future__ import annotations

import sqlite3

from engine.keys import KEYS_INDEX, KEYS_TABLE, KeyRing

NOW = "2026-11-24T00:00:00Z"


def _db() -> sqlite3.Cursor:
    con = sqlite3.connect(":memory:")
    con.execute(KEYS_TABLE)
    con.execute(KEYS_INDEX)
    return con.cursor()


def _keys(c: sqlite3.Cursor, owner: str) -> list[str]:
    c.execute("SELECT key_id FROM keys WHERE owner=?", (owner,))
    return [row[0] for row in c.fetchall()]


def test_load_finds_the_stored_key_and_current_creates_none() -> None:
    c = _db()
    key_id, _ = KeyRing().current(c, "alice", NOW)
    ring = KeyRing()
    ring.load(c, ["alice", "bob"])
    assert ring.current(c, "alice", NOW)[0] == key_id
    assert _keys(c, "alice") == [key_id]


def test_an_owner_load_found_without_a_key_gets_exactly_one_even_when_evicted() -> None:
    c = _db()
    ring = KeyRing(capacity=1)
    ring.load(c, ["alice", "bob"])
    first, _ = ring.current(c, "alice", NOW)
    ring.current(c, "bob", NOW)  # evicts alice from the cache
    again, _ = ring.current(c, "alice", NOW)
    assert again == first
    assert _keys(c, "alice") == [first]


def test_destroyed_owner_starts_afresh_with_one_new_key() -> None:
    c = _db()
    ring = KeyRing()
    ring.load(c, ["~x:h"])
    old, _ = ring.current(c, "~x:h", NOW)
    ring.destroy(c, ["~x:h"])
    new, _ = ring.current(c, "~x:h", NOW)
    assert new != old
    assert _keys(c, "~x:h") == [new]


def test_load_of_many_owners_spans_several_queries() -> None:
    c = _db()
    writer = KeyRing()
    stored = {f"c{i}": writer.current(c, f"c{i}", NOW)[0] for i in range(1200)}
    ring = KeyRing()
    ring.load(c, list(stored))
    assert {owner: ring.current(c, owner, NOW)[0] for owner in stored} == stored
    c.execute("SELECT count(*) FROM keys")
    assert c.fetchone()[0] == 1200
