"""`engage emit --token`: whatever the token, the engine reads from emit's header exactly that token."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops.access_http import presented
from ops.emit import authorization


@given(st.text(min_size=1))
def test_the_engine_reads_exactly_the_token_emit_sends(token: str) -> None:
    """A header carries ASCII only, and the engine trims a Bearer token: a token of other characters
    (é, a line break, a space at an end) made emit crash or say it could not reach the engine."""
    header = authorization(token).encode("ascii")  # what httpx sends as it is
    assert presented([(b"authorization", header)]) == token
