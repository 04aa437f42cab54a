"""Writing uses msgspec's sorted encoding as RFC 8785; this keeps it equal to an independent JCS
implementation for every value the log can hold (strings of any code point, I-JSON integers)."""
from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from engine.chain import Sealer, seal_encoded

text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
scalar = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=12), inner, max_size=4), max_leaves=20)


@given(value)
def test_sorted_msgspec_encoding_is_rfc8785(v: Any) -> None:
    assert msgspec.json.encode(v, order="sorted") == rfc8785.dumps(v)


@given(st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=12), value, max_size=6),
       st.integers(1, 2**53 - 1), text, st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_a_record_sealed_around_an_encoded_event_is_its_rfc8785_form(
        event: dict[str, Any], position: int, recorded_at: str, prev_hash: str) -> None:
    sealed = seal_encoded(position, recorded_at, msgspec.json.encode(event, order="sorted"), prev_hash)
    body: dict[str, Any] = {"position": position, "recorded_at": recorded_at, "event": event, "prev_hash": prev_hash}
    assert sealed.hash == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert sealed.line == rfc8785.dumps({**body, "hash": sealed.hash})


@given(st.lists(st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=12), value, max_size=4),
                min_size=1, max_size=5),
       st.integers(1, 2**53 - 10), text, st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_a_batch_sealed_in_a_row_is_a_chain_of_rfc8785_records(
        events: list[dict[str, Any]], first: int, recorded_at: str, prev_hash: str) -> None:
    """One Sealer for a batch: each record chains to the hash just made, as SPEC §8 says."""
    sealer = Sealer(recorded_at, prev_hash)
    prev = prev_hash
    for position, event in enumerate(events, start=first):
        line = sealer.seal(position, msgspec.json.encode(event, order="sorted"))
        body: dict[str, Any] = {"position": position, "recorded_at": recorded_at, "event": event, "prev_hash": prev}
        digest = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
        assert line == rfc8785.dumps({**body, "hash": digest})
        assert sealer.hash == digest
        prev = digest
