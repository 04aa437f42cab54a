"""`engage emit --http`: why a request got no answer, in words, never an empty reason."""
from __future__ import annotations

import httpx
import pytest

from ops.emit import unanswered

URL = "http://127.0.0.1:4222"


@pytest.mark.parametrize(("error", "words"), [
    (httpx.ConnectError("All connection attempts failed"), ("cannot reach", "All connection attempts failed")),
    (httpx.ConnectError(""), ("cannot reach", ": ConnectError;")),
    (httpx.ReadError(""), ("did not answer HTTP (ReadError)", "NATS port")),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."),
     ("did not answer HTTP (Server disconnected",)),
    (httpx.ReadTimeout(""), ("did not answer within 120 s (ReadTimeout)", "safe")),
])
def test_a_request_without_an_answer_says_why(error: httpx.HTTPError, words: tuple[str, ...]) -> None:
    said = unanswered(URL, error)
    assert URL in said and ": ;" not in said and "()" not in said, said
    for word in words:
        assert word in said, said
