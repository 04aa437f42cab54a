"""Projections ignore arrival order: any permutation of a profile's events gives the same answers, bit for bit."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from projections.advocacy import advocacy, explain_advocacy, score, tier_changes
from projections.engagement import (
    LADDER,
    consent_granted,
    engagement,
    explain_engagement,
    observed_changes,
    stated,
)

AS_OF = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)

# A year either side of T, and often the very same instant: ties are where order could leak in.
instants = st.one_of(
    st.just(AS_OF),
    st.just(AS_OF - timedelta(days=90)),
    st.datetimes(min_value=datetime(2025, 10, 1), max_value=datetime(2027, 10, 1), timezones=st.just(UTC)),
)
as_ofs = st.one_of(st.just(AS_OF), instants)
event_ids = st.text(alphabet="abc123", min_size=1, max_size=4)
# The table's weights, and any finite float too: far apart magnitudes make `sum` order-dependent.
weights = st.one_of(st.sampled_from([10.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -2.0, -4.0, -5.0]),
                    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))

contributions = st.lists(st.tuples(instants, weights), max_size=40)
rungs = st.lists(st.tuples(instants, st.sampled_from(LADDER[1:])), max_size=40)
# Event ids are unique in the log, so "latest" by (occurred_at, id) never ties.
statements = st.lists(st.tuples(instants, event_ids, st.sampled_from([None, *LADDER[1:]])), max_size=20,
                      unique_by=lambda s: s[1])
consents = st.lists(st.tuples(instants, event_ids, st.booleans()), max_size=20, unique_by=lambda c: c[1])


@given(items=contributions, as_of=as_ofs, data=st.data())
def test_score_ignores_arrival_order(items: list[tuple[datetime, float]], as_of: datetime, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(items))
    assert score(shuffled, as_of).hex() == score(items, as_of).hex()  # bit-identical, -0.0 included
    assert advocacy(shuffled, as_of) == advocacy(items, as_of)


@given(items=contributions, data=st.data())
def test_tier_changes_ignore_arrival_order(items: list[tuple[datetime, float]], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(items))
    assert tier_changes(shuffled) == tier_changes(items)


@given(items=rungs, said=statements, as_of=as_ofs, data=st.data())
def test_engagement_ignores_arrival_order(
    items: list[tuple[datetime, str]], said: list[tuple[datetime, str, str | None]], as_of: datetime,
    data: st.DataObject,
) -> None:
    shuffled_rungs = data.draw(st.permutations(items))
    shuffled_said = data.draw(st.permutations(said))
    assert engagement(shuffled_rungs, shuffled_said, as_of) == engagement(items, said, as_of)
    assert stated(shuffled_said, as_of) == stated(said, as_of)
    assert observed_changes(shuffled_rungs) == observed_changes(items)


@given(changes=consents, as_of=as_ofs, data=st.data())
def test_consent_ignores_arrival_order(
    changes: list[tuple[datetime, str, bool]], as_of: datetime, data: st.DataObject
) -> None:
    assert consent_granted(data.draw(st.permutations(changes)), as_of) == consent_granted(changes, as_of)


@given(items=st.lists(st.tuples(instants, event_ids, st.sampled_from(LADDER[1:])), max_size=20,
                      unique_by=lambda r: r[1]),
       as_of=as_ofs, data=st.data())
def test_explain_engagement_ignores_arrival_order(
    items: list[tuple[datetime, str, str]], as_of: datetime, data: st.DataObject
) -> None:
    assert explain_engagement(data.draw(st.permutations(items)), as_of) == explain_engagement(items, as_of)


@given(items=st.lists(st.tuples(instants, event_ids, st.just("referral.made"), weights), max_size=20,
                      unique_by=lambda r: r[1]),
       as_of=as_ofs, data=st.data())
def test_explain_advocacy_ignores_arrival_order(
    items: list[tuple[datetime, str, str, float]], as_of: datetime, data: st.DataObject
) -> None:
    explained = explain_advocacy(items, as_of)
    assert explain_advocacy(data.draw(st.permutations(items)), as_of) == explained
    assert explained[-1]["total"].hex() == score([(at, w) for at, _, _, w in items], as_of).hex()
