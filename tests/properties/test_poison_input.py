"""Poison input: whatever bytes arrive, each ends as an outcome, every reject is kept with its raw
bytes, nothing escapes the ingest loop, and good events after it still go through (real SQLite)."""
from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.outcomes import Accepted, Duplicate, Rejected
from engine.chain import verify
from engine.log import Log
from engine.received import Received
from tests.samples import event

NOW = datetime(2026, 10, 2, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@st.composite
def mangled_events(draw: st.DrawFn) -> bytes:
    """A real event with one field replaced by anything: the near-misses producers send."""
    e = event(draw(st.integers(0, 5)), "review.posted", {"product": "p", "rating": 5, "text": "t"})
    key = draw(st.sampled_from(["id", "type", "occurred_at", "customer", "data", "source", "channel", "extra"]))
    e[key] = draw(json_values)
    return json.dumps(e).encode()


inputs = st.lists(st.binary(max_size=200) | mangled_events() | json_values.map(lambda v: json.dumps(v).encode()),
                  min_size=1, max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=inputs)
def test_any_bytes_end_as_kept_rejects_and_good_events_still_go_through(batch: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Log(Path(tmp) / "log.sqlite")
        try:
            good = json.dumps(event("good", "idea.voted", {"idea": "i"})).encode()
            outcomes = log.commit([Received(raw, "test", NOW) for raw in [*batch, good]])
            assert len(outcomes) == len(batch) + 1
            assert isinstance(outcomes[-1], Accepted | Duplicate)
            rejected = [(raw, o) for raw, o in zip(batch, outcomes, strict=False) if isinstance(o, Rejected)]
            kept = log.rejects(limit=1000)
            assert [(r.reason, r.detail) for r in kept] == [(o.reason, o.detail) for _, o in rejected]
            assert [log.reject_raw(r.seq) for r in kept] == [raw for raw, _ in rejected]
            assert all(o.detail for _, o in rejected)
            assert verify(log.iter_records())[1] is None
        finally:
            log.close()
