"""The hash chain of SPEC §8: record bytes, record hash, and verification that needs none of our code.

Writing uses msgspec's sorted compact encoding, which equals RFC 8785 (JCS) for what the log holds:
strings, integers within I-JSON's ±2^53 range, booleans, null and ASCII keys (a property test pins
the two together). Verifying uses the independent `rfc8785` package, so a bug in how we write
cannot hide itself when we check.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import msgspec
import rfc8785

ZERO_HASH = "0" * 64

_encode = msgspec.json.Encoder(order="sorted").encode


class Sealed(msgspec.Struct, frozen=True):
    line: bytes  # the whole record, hash included: what the log stores and `export` prints
    hash: str


class Broken(msgspec.Struct, frozen=True):
    position: int  # the first record that does not verify (1-based line/position)
    problem: str


def seal(position: int, recorded_at: str, event: dict[str, Any], prev_hash: str) -> Sealed:
    """The record of one accepted event, hashed over its canonical form without `hash`."""
    return seal_encoded(position, recorded_at, _encode(event), prev_hash)


def seal_encoded(position: int, recorded_at: str, event: bytes, prev_hash: str) -> Sealed:
    """`seal` for an event already in its canonical form (see Sealer)."""
    sealer = Sealer(recorded_at, prev_hash)
    return Sealed(line=sealer.seal(position, event), hash=sealer.hash)


class Sealer:
    """Seals the successive records of one batch, each chained to the one before. The record is
    written around the event's canonical form, the event encoded once: the keys in canonical order
    are event, hash, position, prev_hash, recorded_at, so the line is the hashed form with
    `"hash":"…",` after the event. What the records share (`recorded_at`) is encoded once, and
    each one's `prev_hash` is the hash just made (a hex digest, whose JSON is itself in quotes)."""

    __slots__ = ("_prev", "_recorded", "hash")

    def __init__(self, recorded_at: str, prev_hash: str) -> None:
        self._recorded = b',"recorded_at":' + _encode(recorded_at) + b"}"
        self._prev = _encode(prev_hash)
        self.hash = prev_hash  # the hash of the last record sealed (at first, the one before the batch)

    def seal(self, position: int, event: bytes) -> bytes:
        """The record (the line) at `position` whose event is `event` in canonical form."""
        tail = b"".join((b',"position":', b"%d" % position, b',"prev_hash":', self._prev, self._recorded))
        head = b'{"event":' + event
        digest = hashlib.sha256(head + tail).hexdigest()
        self.hash = digest
        self._prev = quoted = b'"' + digest.encode("ascii") + b'"'
        return b"".join((head, b',"hash":', quoted, tail))


class Verified(msgspec.Struct, frozen=True):
    records: int  # how many records were checked
    head_hash: str  # the hash of the last record checked (ZERO_HASH for none)
    broken: Broken | None  # the first break, or None when every record checked verifies


def verify(lines: Iterable[bytes | str]) -> tuple[int, Broken | None]:
    """(records checked, the first break or None): `verify_chain` without the head."""
    checked = verify_chain(lines)
    return checked.records, checked.broken


def verify_chain(lines: Iterable[bytes | str], reaching: str | None = None) -> Verified:
    """Check a sequence of records from SPEC §8 alone: positions 1, 2, … with no gap, each
    `prev_hash` equal to the previous `hash` (64 zeros first), each `hash` the SHA-256 of the RFC 8785
    encoding of the record without it.

    A chain cut short still verifies: every prefix of it is intact. `reaching`, a record's hash
    known from elsewhere (the head the engine showed at some instant, GET /health), closes that
    gap: the records must include the one with that hash, else the break is the first position
    missing."""
    prev = ZERO_HASH
    count = 0
    reached = reaching is None
    for count, line in enumerate(lines, start=1):
        problem, claimed = _check(line, count, prev)
        if problem is not None:
            return Verified(count, prev, Broken(count, problem))
        prev = claimed
        reached = reached or claimed == reaching
    if not reached:
        return Verified(count, prev, Broken(count + 1, f"missing: the records end at position {count}, before "
                                                       f"the one whose hash is {reaching}"))
    return Verified(count, prev, None)


def _check(line: bytes | str, position: int, prev: str) -> tuple[str | None, str]:
    """(what is wrong with this record or None, the hash it claims)."""
    if not line.strip():
        return "an empty line where a record was expected (an export holds one record per line)", ""
    try:
        record = msgspec.json.decode(line)
    except msgspec.DecodeError as e:
        return f"not JSON: {e}", ""
    if not isinstance(record, dict):
        return "not a JSON object", ""
    # A name given twice in one object: a decoder keeps one of the values (msgspec the last, others
    # the first), so the hash would vouch for content that readers see differently. RFC 8785 takes
    # no such input. (~8 µs a record, against ~30 for the canonical form.)
    try:
        json.loads(line, object_pairs_hook=_no_repeated_names)
    except _RepeatedName as e:
        return f"the name {e.args[0]!r} is given twice in one object", ""
    if record.get("position") != position:
        return f"position {record.get('position')!r} where {position} was expected", ""
    if record.get("prev_hash") != prev:
        return "prev_hash does not match the previous record's hash", ""
    claimed = record.pop("hash", None)
    record.pop("personal", None)  # `export --decrypt` adds it outside the hash (SPEC §8)
    try:
        canonical = rfc8785.dumps(record)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        return f"cannot be canonicalised: {e}", ""
    if hashlib.sha256(canonical).hexdigest() != claimed:
        return "hash does not match the record's content", ""
    return None, claimed


class _RepeatedName(Exception):
    pass


def _no_repeated_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _RepeatedName(name)
            seen.add(name)
    return members
