"""The hash chain of SPEC §8: sealing, verification, and where a break is reported."""
from __future__ import annotations

import hashlib
import json

import msgspec
import rfc8785

from engine.chain import ZERO_HASH, seal, verify, verify_chain

EVENT = {"id": "e-1", "type": "idea.voted", "occurred_at": "2026-10-01T12:00:00Z", "source": "s",
         "channel": "web", "customer": "c-1", "data": {"idea": "i-1"}}


def chain(n: int) -> list[bytes]:
    lines, prev = [], ZERO_HASH
    for position in range(1, n + 1):
        sealed = seal(position, "2026-10-01T12:00:01Z", {**EVENT, "id": f"e-{position}"}, prev)
        lines.append(sealed.line)
        prev = sealed.hash
    return lines


def test_first_record_links_to_64_zeros_and_hashes_its_jcs_form() -> None:
    record = json.loads(chain(1)[0])
    assert record["prev_hash"] == "0" * 64
    body = {k: v for k, v in record.items() if k != "hash"}
    assert record["hash"] == hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def test_stored_line_is_the_canonical_form_of_the_whole_record() -> None:
    line = chain(1)[0]
    assert line == rfc8785.dumps(json.loads(line))


def test_intact_chain_verifies() -> None:
    assert verify(chain(5)) == (5, None)


def test_changed_record_is_reported_at_its_position() -> None:
    lines = chain(5)
    record = json.loads(lines[2])
    record["event"]["source"] = "tampered"
    lines[2] = json.dumps(record).encode()
    _, broken = verify(lines)
    assert broken is not None and broken.position == 3 and "hash" in broken.problem


def test_rehashed_forgery_breaks_the_next_link() -> None:
    lines = chain(5)
    record = json.loads(lines[1])
    record["event"]["source"] = "forged"
    body = {k: v for k, v in record.items() if k != "hash"}
    record["hash"] = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    lines[1] = json.dumps(record).encode()
    _, broken = verify(lines)
    assert broken is not None and broken.position == 3 and "prev_hash" in broken.problem


def test_missing_record_is_a_gap_in_positions() -> None:
    lines = chain(5)
    del lines[3]
    _, broken = verify(lines)
    assert broken is not None and broken.position == 4 and "position" in broken.problem


def test_garbage_line_is_reported_not_raised() -> None:
    _, broken = verify([*chain(2), b"not json"])
    assert broken is not None and broken.position == 3 and "not JSON" in broken.problem


def test_decrypted_personal_member_is_outside_the_hash() -> None:
    lines = chain(2)
    record = msgspec.json.decode(lines[0])
    record["personal"] = {"text": "hello"}
    lines[0] = msgspec.json.encode(record)
    assert verify(lines) == (2, None)


def hash_of(line: bytes) -> str:
    return str(json.loads(line)["hash"])


def test_a_chain_cut_short_verifies_on_its_own_but_not_against_a_later_head() -> None:
    lines = chain(5)
    assert verify(lines[:3]) == (3, None)  # every prefix of a chain is intact
    cut = verify_chain(lines[:3], reaching=hash_of(lines[4]))
    assert cut.records == 3 and cut.head_hash == hash_of(lines[2])
    assert cut.broken is not None and cut.broken.position == 4
    assert "end at position 3" in cut.broken.problem and hash_of(lines[4]) in cut.broken.problem


def test_a_chain_that_passes_the_head_it_must_reach_verifies() -> None:
    lines = chain(5)
    assert verify_chain(lines, reaching=hash_of(lines[4])) == verify_chain(lines)
    assert verify_chain(lines, reaching=hash_of(lines[1])).broken is None  # grown since that head was taken
    assert verify_chain(lines).head_hash == hash_of(lines[4])
    assert verify_chain([]).head_hash == ZERO_HASH
    assert verify_chain([], reaching=hash_of(lines[0])).broken is not None
