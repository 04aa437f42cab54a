"""Writing uses msgspec's sorted encoding as RFC 8785; this keeps it equal to an independent JCS
implementation for every value the log can hold (strings of any code point, I-JSON integers)."""
from __future__ import annotations

import msgspec
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
scalar = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=12), inner, max_size=4), max_leaves=20)


@given(value)
def test_sorted_msgspec_encoding_is_rfc8785(v: object) -> None:
    assert msgspec.json.encode(v, order="sorted") == rfc8785.dumps(v)
