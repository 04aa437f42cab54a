"""parse() against SPEC §1 and §2: the order of checks, the catalogue, null, timestamps, identities, same content."""
# ruff: noqa: E501  (the tables read one row per line of the contract)
from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from commands.outcomes import Rejected
from commands.parsing import FUTURE_LIMIT, MAX_BYTES, content_digest, normalise_identity, parse
from commands.touchpoints import (
    CATALOGUE,
    PERSONAL_FIELDS,
    RUNGS,
    Identity,
    Touchpoint,
    case_id,
    from_wire,
    profile_key,
    to_wire,
)

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)

# One minimal valid `data` per catalogue type (None: `data` omitted), in SPEC §1 order.
MINIMAL: dict[str, dict[str, Any] | None] = {
    "customer.registered": None,
    "identity.linked": {"channel": "twitter", "handle": "alice"},
    "customer.erased": None,
    "preferences.stated": {"level": "participant"},
    "consent.changed": {"purpose": "profiling", "granted": False},
    "purchase.completed": {"order": "o-1", "amount_cents": 0, "currency": "EUR"},
    "case.opened": {"case": "k-1"},
    "case.customer_replied": {"case": "k-1"},
    "reaction.added": {"target": "p-1", "kind": ""},
    "idea.voted": {"idea": "i-1"},
    "survey.answered": {"survey": "s-1"},
    "event.attended": {"event": "ev-1"},
    "case.rated": {"case": "k-1", "rating": "good"},
    "mention.observed": None,
    "post.published": {"thread": "t-1"},
    "comment.posted": {"thread": "t-1"},
    "question.asked": {"question": "q-1"},
    "review.posted": {"product": "p-1", "rating": 1},
    "idea.submitted": {"idea": "i-1", "title": ""},
    "answer.posted": {"question": "q-1", "answer": "a-1"},
    "answer.accepted": {"question": "q-1", "answer": "a-1"},
    "content.shared": {"url": "https://example.com/x"},
    "referral.made": {"referral": "r-1"},
    "referral.converted": {"referral": "r-1"},
    "idea.status_changed": {"idea": "i-1", "status": "delivered"},
    "case.assigned": {"case": "k-1", "agent": "ag-1"},
    "case.agent_replied": {"case": "k-1", "agent": "ag-1"},
    "case.note_added": {"case": "k-1", "agent": "ag-1"},
    "case.put_on_hold": {"case": "k-1"},
    "case.escalated": {"case": "k-1", "priority": "urgent"},
    "case.solved": {"case": "k-1"},
    "case.reopened": {"case": "k-1"},
    "case.closed": {"case": "k-1"},
}


def event(type_: str = "idea.voted", data: Any = ..., **fields: Any) -> dict[str, Any]:
    """A valid wire event; `data=...` takes the minimal example, a field set to ... is dropped."""
    body: dict[str, Any] = {
        "id": "e-1",
        "type": type_,
        "occurred_at": "2026-10-01T11:00:00Z",
        "source": "community",
        "channel": "forum",
        "customer": "c-42",
    }
    minimal = MINIMAL.get(type_)
    if data is ... and minimal is not None:
        body["data"] = copy.deepcopy(minimal)  # callers mutate what they get; MINIMAL stays as written
    elif data is not ...:
        body["data"] = data
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


def parsed(obj: Any, now: datetime = NOW) -> Touchpoint[Any]:
    tp = parse(encode(obj), now)
    assert isinstance(tp, Touchpoint), tp
    return tp


def rejected(raw: bytes | dict[str, Any], now: datetime = NOW) -> Rejected:
    r = parse(raw if isinstance(raw, bytes) else encode(raw), now)
    assert isinstance(r, Rejected), r
    return r


# --- the catalogue ------------------------------------------------------------------------------


def test_catalogue_has_the_33_types_of_spec_1() -> None:
    assert list(CATALOGUE) == list(MINIMAL)
    assert len(CATALOGUE) == 33


@pytest.mark.parametrize(
    ("type_", "rung"),
    [
        ("customer.registered", None), ("identity.linked", None), ("customer.erased", None),
        ("preferences.stated", None), ("consent.changed", None),
        ("purchase.completed", "transactional"), ("case.opened", "transactional"),
        ("case.customer_replied", "transactional"),
        ("reaction.added", "participant"), ("idea.voted", "participant"), ("survey.answered", "participant"),
        ("event.attended", "participant"), ("case.rated", "participant"),
        ("mention.observed", "contributor"), ("post.published", "contributor"),
        ("comment.posted", "contributor"), ("question.asked", "contributor"),
        ("review.posted", "contributor"), ("idea.submitted", "contributor"),
        ("answer.posted", "collaborator"), ("answer.accepted", "collaborator"),
        ("content.shared", "advocate"), ("referral.made", "advocate"), ("referral.converted", "advocate"),
        ("idea.status_changed", None), ("case.assigned", None), ("case.agent_replied", None),
        ("case.note_added", None), ("case.put_on_hold", None), ("case.escalated", None),
        ("case.solved", None), ("case.reopened", None), ("case.closed", None),
    ],
)  # fmt: skip
def test_catalogue_rungs(type_: str, rung: str | None) -> None:
    assert CATALOGUE[type_].rung == rung
    assert CATALOGUE[type_].name == type_


def test_catalogue_flags() -> None:
    assert {n for n, e in CATALOGUE.items() if e.requires_customer} == {"identity.linked", "customer.erased"}
    assert {n for n, e in CATALOGUE.items() if e.case_event} == {n for n in CATALOGUE if n.startswith("case.")}
    assert RUNGS == ("inactive", "transactional", "participant", "contributor", "collaborator", "advocate")
    assert frozenset({"text", "title", "subject", "name", "email"}) == PERSONAL_FIELDS


@pytest.mark.parametrize("type_", list(MINIMAL))
def test_each_type_accepts_its_minimal_example(type_: str) -> None:
    tp = parsed(event(type_))
    assert tp.type == type_
    assert isinstance(tp.data, CATALOGUE[type_].data)
    assert from_wire(to_wire(tp)) == tp


@pytest.mark.parametrize(
    ("type_", "data", "detail"),
    [
        ("customer.registered", {"name": 1}, "data.name: expected str, got int"),
        ("identity.linked", {"channel": "twitter", "handle": ""}, "data.handle: expected str of length >= 1"),
        ("customer.erased", {"reason": "asked"}, "data.reason: unknown field"),
        ("preferences.stated", {"level": "inactive"}, "data.level: expected one of transactional, participant, contributor, collaborator, advocate"),
        ("preferences.stated", {}, "data.level: required field missing"),
        ("consent.changed", {"purpose": "profiling", "granted": "yes"}, "data.granted: expected bool, got str"),
        ("consent.changed", {"purpose": "ads", "granted": True}, "data.purpose: expected one of profiling, marketing, community_profile"),
        ("purchase.completed", {"order": "o", "amount_cents": 1, "currency": "eur"}, "data.currency: expected str of 3 upper-case letters"),
        ("purchase.completed", {"order": "o", "amount_cents": -1, "currency": "EUR"}, "data.amount_cents: expected int >= 0"),
        ("case.opened", {"case": ""}, "data.case: expected str of length >= 1"),
        ("case.opened", {"case": "k", "priority": "asap"}, "data.priority: expected one of low, normal, high, urgent"),
        ("case.customer_replied", {"case": "k", "text": None}, "data.text: expected str, got null"),
        ("reaction.added", {"target": "t"}, "data.kind: required field missing"),
        ("idea.voted", {"idea": 1}, "data.idea: expected str, got int"),
        ("survey.answered", {"survey": "s", "nps": 11}, "data.nps: expected int <= 10"),
        ("survey.answered", {"survey": "s", "nps": -1}, "data.nps: expected int >= 0"),
        ("event.attended", {}, "data.event: required field missing"),
        ("case.rated", {"case": "k", "rating": "ok"}, "data.rating: expected one of good, bad"),
        ("mention.observed", {"url": ""}, "data.url: expected str of length >= 1"),
        ("post.published", {"title": "hello"}, "data.thread: required field missing"),
        ("comment.posted", {"thread": ""}, "data.thread: expected str of length >= 1"),
        ("question.asked", {"question": None}, "data.question: expected str, got null"),
        ("review.posted", {"product": "p", "rating": 0}, "data.rating: expected int >= 1"),
        ("review.posted", {"product": "p", "rating": 6}, "data.rating: expected int <= 5"),
        ("idea.submitted", {"idea": "i"}, "data.title: required field missing"),
        ("answer.posted", {"question": "q"}, "data.answer: required field missing"),
        ("answer.accepted", {"question": "q", "answer": ""}, "data.answer: expected str of length >= 1"),
        ("content.shared", {}, "data.url: required field missing"),
        ("referral.made", {"referral": ""}, "data.referral: expected str of length >= 1"),
        ("referral.converted", {"referral": 1}, "data.referral: expected str, got int"),
        ("idea.status_changed", {"idea": "i", "status": "done"}, "data.status: expected one of under_review, planned, delivered, declined"),
        ("case.assigned", {"case": "k"}, "data.agent: required field missing"),
        ("case.assigned", {"case": "k", "agent": "a", "team": None}, "data.team: expected str, got null"),
        ("case.agent_replied", {"case": "k", "agent": ""}, "data.agent: expected str of length >= 1"),
        ("case.note_added", {"case": "k", "agent": "a", "note": "x"}, "data.note: unknown field"),
        ("case.put_on_hold", {}, "data.case: required field missing"),
        ("case.escalated", {"case": "k"}, "data.priority: required field missing"),
        ("case.solved", {"case": "k", "resolution": 5}, "data.resolution: expected str, got int"),
        ("case.reopened", {"case": ""}, "data.case: expected str of length >= 1"),
        ("case.closed", {"case": None}, "data.case: expected str, got null"),
    ],
)
def test_each_type_rejects_a_wrong_field_naming_its_path(type_: str, data: dict[str, Any], detail: str) -> None:
    assert rejected(event(type_, data)) == Rejected("schema", detail)


# --- the order of checks (SPEC §2) --------------------------------------------------------------


def test_at_most_64_kib_is_accepted() -> None:
    raw = encode(event())
    raw = raw + b" " * (MAX_BYTES - len(raw))
    assert len(raw) == 65536
    assert isinstance(parse(raw, NOW), Touchpoint)


@pytest.mark.parametrize(
    "raw",
    [
        encode(event()) + b" " * MAX_BYTES,  # valid but too large
        b"\xff" * (MAX_BYTES + 1),  # too large and not even UTF-8
        b"[" * (MAX_BYTES + 1),
    ],
)
def test_over_64_kib_is_too_large_whatever_else_is_wrong(raw: bytes) -> None:
    assert rejected(raw).reason == "too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b" ",
        b"not json",
        b"[]",
        b"[" + encode(event()) + b"]",  # an array is a body of events, not one event
        b'"idea.voted"',
        b"1",
        b"null",
        b"true",
        b"\xff\xfe",
        b'{"type": "idea.voted"',  # truncated
        encode(event()) + b"x",  # trailing characters
        encode(event()) + encode(event()),  # two objects
        b"\xef\xbb\xbf" + encode(event()),  # a byte order mark is not JSON
        b'{"type": "nope", "x": }',  # malformed wins over unknown_type
        b'{"type": "idea.voted", "zzz": 1, "x": ',  # and over schema, even after a schema error
        b'{"type": "idea.voted", "zzz": 1, "x": "\xff"}',  # invalid UTF-8 after an unknown field
        b'{"type": "idea.voted", "x": "\\ud800"}',  # an unpaired surrogate
        b'{"type": "idea.voted", "\\udc00": 1}',
        b'{"type": "idea.voted", "x": NaN}',
        b"{'type': 'idea.voted'}",
        b'{"type": "nope", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # nested deeper than we read
    ],
)
def test_not_a_json_object_is_malformed(raw: bytes) -> None:
    assert rejected(raw).reason == "malformed"


@pytest.mark.parametrize(
    ("obj", "detail"),
    [
        ({"id": "e-1"}, "type: required field missing"),
        ({}, "type: required field missing"),
        ({"type": None}, "type: expected str, got null"),
        ({"type": 1}, "type: expected str, got int"),
        ({"type": True}, "type: expected str, got bool"),
        ({"type": {"name": "idea.voted"}}, "type: expected str, got object"),
        ({"type": ["idea.voted"]}, "type: expected str, got array"),
        ({"type": "idea.liked"}, "type: 'idea.liked' is not in the catalogue"),
        ({"type": "Idea.Voted"}, "type: 'Idea.Voted' is not in the catalogue"),
        ({"type": ""}, "type: '' is not in the catalogue"),
        # unknown_type comes before schema: the rest of this event is wrong as well.
        ({**event(), "type": "nope", "id": 5, "extra": 1}, "type: 'nope' is not in the catalogue"),
    ],
)
def test_unknown_type(obj: dict[str, Any], detail: str) -> None:
    assert rejected(obj) == Rejected("unknown_type", detail)


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [
        (b'{"type":"idea.voted","type":"event.attended"}', Rejected("schema", "type: given more than once, with different values")),
        (b'{"type":"nope","type":"idea.voted"}', Rejected("schema", "type: given more than once, with different values")),
        (b'{"type":"idea.voted","type":"nope"}', Rejected("unknown_type", "type: 'nope' is not in the catalogue")),
    ],
)
def test_a_repeated_type_key(raw: bytes, verdict: Rejected) -> None:
    assert parse(raw, NOW) == verdict


_HEAD = b'{"type":"comment.posted","occurred_at":"2026-10-01T10:00:00Z","source":"s","channel":"web",'
_TAIL = b'"data":{"thread":"t","text":"hello"}}'


@pytest.mark.parametrize(
    ("middle", "verdict"),
    [
        # whose event it is, given twice: the last value won, and the event went to another profile
        (b'"id":"e-1","customer":"c-1","customer":"c-2",', Rejected("schema", "customer: given more than once")),
        (b'"id":"e-1","customer":"c-1","customer":"c-1",', Rejected("schema", "customer: given more than once")),
        (b'"id":"e-1","identity":{"channel":"x","handle":"a"},"identity":{"channel":"x","handle":"b"},',
         Rejected("schema", "identity: given more than once")),
        (b'"id":"e-1","id":"e-2","customer":"c-1",', Rejected("schema", "id: given more than once")),
    ],
)
def test_a_name_that_says_whose_or_which_event_given_twice_is_refused(middle: bytes, verdict: Rejected) -> None:
    assert parse(_HEAD + middle + _TAIL, NOW) == verdict


def test_once_the_precise_look_runs_any_repeated_name_is_named_by_its_path() -> None:
    """A value equal to "id" sends the input to the precise look, which names what it finds."""
    raw = _HEAD + b'"id":"e-1","customer":"c-1","data":{"thread":"id","thread":"u"}}'
    assert parse(raw, NOW) == Rejected("schema", "data.thread: given more than once")


def test_a_value_equal_to_such_a_name_is_no_repeat() -> None:
    raw = _HEAD + b'"id":"id","customer":"customer",' + _TAIL.replace(b'"hello"', b'"identity"')
    tp = parse(raw, NOW)
    assert isinstance(tp, Touchpoint) and (tp.id, tp.customer) == ("id", "customer")


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [
        (b'{"type": 1e400}', Rejected("unknown_type", "type: expected str, got float")),
        (b'{"type": 1e400, "x": }', Rejected("malformed", "not JSON: JSON is malformed: invalid character (byte 21)")),
        (b'{"type": 1, "x": "\xff"}', Rejected("malformed", "not UTF-8: invalid start byte at byte 18")),
        (rb'{"type": "\u00e9v\u00e8nement"}', Rejected("unknown_type", "type: 'évènement' is not in the catalogue")),
    ],
)
def test_type_is_read_from_any_well_formed_object(raw: bytes, verdict: Rejected) -> None:
    assert parse(raw, NOW) == verdict


def test_unknown_type_detail_is_clipped() -> None:
    assert len(rejected({"type": "x" * 10_000}).detail) < 100


def test_schema_comes_before_future_timestamp() -> None:
    late = event(occurred_at="2030-01-01T00:00:00Z", data={"idea": ""})
    assert rejected(late).reason == "schema"


# --- top-level fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"id": ...}, "id: required field missing"),
        ({"id": ""}, "id: expected str of length >= 1"),
        ({"id": "x" * 129}, "id: expected str of length <= 128"),
        ({"id": 7}, "id: expected str, got int"),
        ({"id": "a\tb"}, "id: expected str without control characters"),
        ({"id": "a\x00"}, "id: expected str without control characters"),
        ({"id": "a\x7f"}, "id: expected str without control characters"),
        ({"id": "a\x85"}, "id: expected str without control characters"),
        ({"id": "a\n"}, "id: expected str without control characters"),
        ({"occurred_at": ...}, "occurred_at: required field missing"),
        ({"source": ...}, "source: required field missing"),
        ({"source": ""}, "source: expected str of length >= 1"),
        ({"source": "s" * 65}, "source: expected str of length <= 64"),
        ({"channel": ...}, "channel: required field missing"),
        ({"channel": "Forum"}, "channel: expected str matching [a-z0-9_]{1,32}"),
        ({"channel": "forum\n"}, "channel: expected str matching [a-z0-9_]{1,32}"),
        ({"channel": "c" * 33}, "channel: expected str matching [a-z0-9_]{1,32}"),
        ({"channel": ""}, "channel: expected str matching [a-z0-9_]{1,32}"),
        ({"customer": ""}, "customer: expected str of length >= 1"),
        ({"customer": "~twitter:alice"}, "customer: expected str not starting with '~'"),
        ({"customer": "c" * 129}, "customer: expected str of length <= 128"),
        ({"customer": 42}, "customer: expected str, got int"),
        ({"extra": 1}, "extra: unknown field"),
        ({"Customer": "c-1"}, "Customer: unknown field"),
        ({"data": []}, "data: expected object, got array"),
        ({"data": "x"}, "data: expected object, got str"),
    ],
)
def test_top_level_fields(fields: dict[str, Any], detail: str) -> None:
    assert rejected(event(**fields)) == Rejected("schema", detail)


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"id": "x" * 128}, True),
        ({"id": "😀" * 128}, True),  # code points as sent, not UTF-8 bytes or UTF-16 units
        ({"id": "😀" * 129}, False),
        ({"id": "évènement #1 — ok"}, True),
        ({"source": "é" * 64}, True),
        ({"customer": "c" * 128}, True),
        ({"customer": "😀" * 128}, True),
        ({"customer": "a~b"}, True),
        ({"channel": "c" * 32}, True),
        ({"channel": "web_2"}, True),
    ],
)
def test_lengths_count_code_points(fields: dict[str, Any], ok: bool) -> None:
    assert isinstance(parse(encode(event(**fields)), NOW), Touchpoint) is ok


def test_unknown_field_detail_is_clipped() -> None:
    detail = rejected(event(data={"idea": "i", "n" * 10_000: 1})).detail
    assert detail.startswith("data.nnn") and detail.endswith("…: unknown field") and len(detail) < 100


# --- customer / identity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"customer": ...}, "customer: exactly one of customer/identity is required"),
        ({"identity": {"channel": "twitter", "handle": "a"}}, "customer: exactly one of customer/identity is required"),
        ({"customer": ..., "identity": {"channel": "twitter"}}, "identity.handle: required field missing"),
        ({"customer": ..., "identity": {"channel": "tw-x", "handle": "a"}}, "identity.channel: expected str matching [A-Za-z0-9_]{1,32}"),
        ({"customer": ..., "identity": {"channel": "t" * 33, "handle": "a"}}, "identity.channel: expected str matching [A-Za-z0-9_]{1,32}"),
        ({"customer": ..., "identity": {"channel": "twitter", "handle": ""}}, "identity.handle: expected str of length >= 1"),
        ({"customer": ..., "identity": {"channel": "twitter", "handle": "h" * 129}}, "identity.handle: expected str of length <= 128"),
        ({"customer": ..., "identity": {"channel": "twitter", "handle": "@"}}, "identity.handle: empty after normalisation"),
        ({"customer": ..., "identity": {"channel": "twitter", "handle": "a", "x": 1}}, "identity.x: unknown field"),
        ({"customer": ..., "identity": "twitter:a"}, "identity: expected object, got str"),
    ],
)
def test_customer_or_identity(fields: dict[str, Any], detail: str) -> None:
    assert rejected(event(**fields)) == Rejected("schema", detail)


@pytest.mark.parametrize("type_", ["identity.linked", "customer.erased"])
def test_types_that_require_customer_refuse_an_identity(type_: str) -> None:
    obj = event(type_, customer=..., identity={"channel": "twitter", "handle": "alice"})
    assert rejected(obj) == Rejected("schema", f"customer: {type_} requires customer, not identity")


@pytest.mark.parametrize(
    ("channel", "handle", "normal"),
    [
        ("Twitter", "@Alice", ("twitter", "alice")),
        ("twitter", "alice", ("twitter", "alice")),
        ("TWITTER", "ALICE", ("twitter", "alice")),
        ("forum", "Straße", ("forum", "strasse")),  # casefold, not lower
        ("forum", "STRASSE", ("forum", "strasse")),
        ("twitter", "@@x", ("twitter", "@x")),  # one leading @ only
        ("twitter", "a@b", ("twitter", "a@b")),
        ("twitter", " @a", ("twitter", " @a")),  # no stripping of spaces
        ("twitter", "@", ("twitter", "")),
    ],
)
def test_normalise_identity(channel: str, handle: str, normal: tuple[str, str]) -> None:
    assert normalise_identity(channel, handle) == normal


def test_parsed_identities_are_normalised_and_equal() -> None:
    a = parsed(event(customer=..., identity={"channel": "Twitter", "handle": "@Alice"}))
    b = parsed(event(customer=..., identity={"channel": "twitter", "handle": "alice"}))
    assert a.identity == b.identity == Identity("twitter", "alice")
    assert profile_key(a) == "~twitter:alice"
    assert content_digest(a) == content_digest(b)


def test_identity_linked_data_is_normalised() -> None:
    tp = parsed(event("identity.linked", {"channel": "Twitter", "handle": "@@Bob"}))
    assert (tp.data.channel, tp.data.handle) == ("twitter", "@bob")
    blank = event("identity.linked", {"channel": "twitter", "handle": "@"})
    assert rejected(blank) == Rejected("schema", "data.handle: empty after normalisation")


def test_casefold_may_lengthen_a_handle_and_still_round_trips() -> None:
    tp = parsed(event(customer=..., identity={"channel": "forum", "handle": "ß" * 128}))
    assert isinstance(tp.identity, Identity) and tp.identity.handle == "ss" * 128
    assert from_wire(to_wire(tp)) == tp


# --- null ---------------------------------------------------------------------------------------


def test_null_nps_is_accepted_and_means_omitted() -> None:
    with_null = parsed(event("survey.answered", {"survey": "s", "nps": None}))
    omitted = parsed(event("survey.answered", {"survey": "s"}))
    assert with_null == omitted
    assert to_wire(with_null)["data"] == {"survey": "s"}
    assert content_digest(with_null) == content_digest(omitted)


def test_null_level_is_accepted_and_kept() -> None:
    tp = parsed(event("preferences.stated", {"level": None}))
    assert tp.data.level is None
    assert to_wire(tp)["data"] == {"level": None}
    assert from_wire(to_wire(tp)) == tp


@pytest.mark.parametrize(
    ("obj", "detail"),
    [
        (event(id=None), "id: expected str, got null"),
        (event(occurred_at=None), "occurred_at: expected str, got null"),
        (event(source=None), "source: expected str, got null"),
        (event(channel=None), "channel: expected str, got null"),
        (event(customer=None), "customer: expected str, got null"),
        (event(customer=..., identity=None), "identity: expected object, got null"),
        (event(data=None), "data: expected object, got null"),
        (event("customer.erased", None), "data: expected object, got null"),
        (event("customer.registered", {"name": None}), "data.name: expected str, got null"),
        (event("case.opened", {"case": "k", "priority": None}), "data.priority: expected str, got null"),
        (event("consent.changed", {"purpose": "marketing", "granted": None}), "data.granted: expected bool, got null"),
        (event("review.posted", {"product": "p", "rating": None}), "data.rating: expected int, got null"),
        (event(customer=..., identity={"channel": "x", "handle": None}), "identity.handle: expected str, got null"),
    ],
)
def test_null_anywhere_else_is_schema(obj: dict[str, Any], detail: str) -> None:
    assert rejected(obj) == Rejected("schema", detail)


# --- data omitted -------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", ["customer.registered", "customer.erased", "mention.observed"])
def test_data_may_be_omitted_when_nothing_is_required_and_means_empty(type_: str) -> None:
    omitted = parsed(event(type_))
    empty = parsed(event(type_, {}))
    assert "data" not in event(type_)
    assert omitted == empty
    assert to_wire(omitted)["data"] == {}
    assert content_digest(omitted) == content_digest(empty)


@pytest.mark.parametrize("type_", [t for t, d in MINIMAL.items() if d is not None])
def test_data_may_not_be_omitted_when_the_type_has_a_required_field(type_: str) -> None:
    obj = event(type_)
    del obj["data"]
    assert rejected(obj) == Rejected("schema", "data: required field missing")


# --- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "detail"),
    [
        (2**53 - 1, None),
        (0, None),
        (2**53, "data.amount_cents: expected int <= 9007199254740991"),
        (2**64, "data.amount_cents: expected int <= 9007199254740991"),
        (-1, "data.amount_cents: expected int >= 0"),
        (1.0, "data.amount_cents: expected int, got float"),
        (True, "data.amount_cents: expected int, got bool"),
        ("1", "data.amount_cents: expected int, got str"),
    ],
)
def test_amounts_are_i_json_integers(amount: Any, detail: str | None) -> None:
    r = parse(encode(event("purchase.completed", {"order": "o", "amount_cents": amount, "currency": "EUR"})), NOW)
    if detail is None:
        assert isinstance(r, Touchpoint) and r.data.amount_cents == amount
    else:
        assert r == Rejected("schema", detail)


def test_a_huge_number_is_schema_not_a_crash() -> None:
    raw = encode(event()).replace(b'"idea":"i-1"', b'"idea":1e400')
    assert rejected(raw).reason == "schema"


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-10-01T11:00:00Z", datetime(2026, 10, 1, 11, tzinfo=UTC)),
        ("2026-10-01t11:00:00z", datetime(2026, 10, 1, 11, tzinfo=UTC)),  # RFC 3339 §5.6 note
        ("2026-10-01T12:00:00+01:00", datetime(2026, 10, 1, 11, tzinfo=UTC)),
        ("2026-10-01T06:30:00-04:30", datetime(2026, 10, 1, 11, tzinfo=UTC)),
        ("2026-10-01T11:00:00-00:00", datetime(2026, 10, 1, 11, tzinfo=UTC)),
        ("2026-10-01T11:00:00.000+00:00", datetime(2026, 10, 1, 11, tzinfo=UTC)),
        ("2026-10-01T11:00:00.5Z", datetime(2026, 10, 1, 11, 0, 0, 500000, tzinfo=UTC)),
        ("2026-10-01T11:00:00.123456Z", datetime(2026, 10, 1, 11, 0, 0, 123456, tzinfo=UTC)),
        ("2026-10-02T10:59:59.999999+23:59", datetime(2026, 10, 1, 11, 0, 59, 999999, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_timestamps_are_stored_in_utc(text: str, instant: datetime) -> None:
    tp = parsed(event(occurred_at=text))
    assert tp.occurred_at == instant
    assert tp.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("2026-10-01T11:00:00", "no offset"),
        ("2026-10-01T11:00:00.1234567Z", "7 fractional digits"),
        ("2026-10-01 11:00:00Z", "space separator"),
        ("2026-10-01T11:00Z", "no seconds"),
        ("2026-10-01T11:00:00+0100", "offset without colon"),
        ("2026-10-01T11:00:00+01", "offset without minutes"),
        ("2026-10-01T11:00:00+24:00", "offset out of range"),
        ("2026-10-01T11:00:00Z\n", "trailing newline"),
        ("2026-10-01T11:00:00.Z", "empty fraction"),
        ("20261001T110000Z", "basic format"),
        ("2026-10-01", "date only"),
        ("", "empty"),
        ("٢٠٢٦-10-01T11:00:00Z", "non-ASCII digits"),
    ],
)
def test_timestamps_not_in_rfc_3339_are_schema(text: str, detail: str) -> None:
    r = rejected(event(occurred_at=text))
    assert r.reason == "schema", detail
    assert r.detail.startswith("occurred_at: expected str in RFC 3339"), r.detail


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("2026-02-30T11:00:00Z", "occurred_at: not a valid date and time"),
        ("2026-13-01T11:00:00Z", "occurred_at: not a valid date and time"),
        ("2026-10-01T24:00:00Z", "occurred_at: not a valid date and time"),
        ("2016-12-31T23:59:60Z", "occurred_at: not a valid date and time"),  # leap second
        ("0000-01-01T00:00:00Z", "occurred_at: not a valid date and time"),
        ("0001-01-01T00:00:00+01:00", "occurred_at: out of range in UTC"),
    ],
)
def test_impossible_timestamps_are_schema(text: str, detail: str) -> None:
    assert rejected(event(occurred_at=text)) == Rejected("schema", detail)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-10-02T12:00:00Z", None),  # exactly now + 24 h
        ("2026-10-02T13:00:00+01:00", None),  # the same instant
        ("2026-10-02T12:00:00.000001Z", "future_timestamp"),
        ("2026-10-02T13:00:00.000001+01:00", "future_timestamp"),
        ("2026-10-02T11:00:00.000001-01:00", "future_timestamp"),
        ("9999-12-31T23:59:59Z", "future_timestamp"),
        ("1900-01-01T00:00:00Z", None),  # the past is not checked
    ],
)
def test_future_timestamp(text: str, reason: str | None) -> None:
    r = parse(encode(event(occurred_at=text)), NOW)
    if reason is None:
        assert isinstance(r, Touchpoint)
    else:
        assert r == Rejected("future_timestamp", "occurred_at: more than 24 hours after the engine's clock")
    assert timedelta(hours=24) == FUTURE_LIMIT


# --- the normalised form ------------------------------------------------------------------------


def test_to_wire_is_the_normalised_event() -> None:
    tp = parsed(
        event(
            "case.opened",
            {"subject": "It broke", "case": "k-1"},
            occurred_at="2026-10-01T12:30:00.250+01:00",
            customer=...,
            identity={"channel": "Twitter", "handle": "@Alice"},
        )
    )
    wire = to_wire(tp)
    assert wire == {
        "id": "e-1",
        "type": "case.opened",
        "occurred_at": "2026-10-01T11:30:00.250000Z",
        "source": "community",
        "channel": "forum",
        "identity": {"channel": "twitter", "handle": "alice"},
        "data": {"case": "k-1", "subject": "It broke", "priority": "normal"},
    }
    assert list(wire) == ["id", "type", "occurred_at", "source", "channel", "identity", "data"]
    assert to_wire(parsed(event()))["occurred_at"] == "2026-10-01T11:00:00Z"
    assert "identity" not in to_wire(parsed(event()))


@pytest.mark.parametrize("type_", list(MINIMAL))
def test_from_wire_inverts_to_wire_through_json(type_: str) -> None:
    tp = parsed(event(type_, occurred_at="2026-10-01T11:00:00.000001+05:00"))
    stored = msgspec.json.decode(msgspec.json.encode(to_wire(tp)))
    assert from_wire(stored) == tp


def test_profile_key_and_case_id() -> None:
    assert profile_key(parsed(event())) == "c-42"
    anonymous = parsed(event(customer=..., identity={"channel": "Forum", "handle": "Bob"}))
    assert profile_key(anonymous) == "~forum:bob"
    assert case_id(parsed(event("case.solved"))) == "k-1"
    assert case_id(parsed(event("idea.voted"))) is None


# --- same content (SPEC §2) ---------------------------------------------------------------------


def digest(obj: dict[str, Any]) -> bytes:
    return content_digest(parsed(obj))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (event(occurred_at="2026-10-01T11:00:00Z"), event(occurred_at="2026-10-01T11:00:00.000+00:00")),
        (event(occurred_at="2026-10-01T11:00:00Z"), event(occurred_at="2026-10-01T12:00:00+01:00")),
        (event(occurred_at="2026-10-01T11:00:00Z"), event(occurred_at="2026-10-01t11:00:00.000000z")),
        (event("customer.erased"), event("customer.erased", {})),
        (event("case.opened", {"case": "k"}), event("case.opened", {"case": "k", "priority": "normal"})),
        (event("survey.answered", {"survey": "s"}), event("survey.answered", {"survey": "s", "nps": None})),
        (
            event(customer=..., identity={"channel": "Twitter", "handle": "@Alice"}),
            event(customer=..., identity={"channel": "twitter", "handle": "alice"}),
        ),
        (
            event(customer=..., identity={"channel": "forum", "handle": "Straße"}),
            event(customer=..., identity={"channel": "FORUM", "handle": "STRASSE"}),
        ),
        (
            event("identity.linked", {"channel": "Twitter", "handle": "@Alice"}),
            event("identity.linked", {"channel": "twitter", "handle": "alice"}),
        ),
        # key order and whitespace are not content
        (event("review.posted", {"rating": 5, "product": "p"}), event("review.posted", {"product": "p", "rating": 5})),
    ],
)
def test_same_content_has_the_same_digest(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert digest(a) == digest(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (event(occurred_at="2026-10-01T11:00:00Z"), event(occurred_at="2026-10-01T11:00:00+01:00")),
        (event(occurred_at="2026-10-01T11:00:00Z"), event(occurred_at="2026-10-01T11:00:00.000001Z")),
        (event(), event(source="shop")),
        (event(), event(channel="web")),
        (event(), event(customer="c-43")),
        (event(), event(id="e-2")),
        (event(), event(data={"idea": "i-2"})),
        (event("case.opened", {"case": "k"}), event("case.opened", {"case": "k", "priority": "high"})),
        (event("survey.answered", {"survey": "s"}), event("survey.answered", {"survey": "s", "nps": 0})),
        (event("customer.registered", {}), event("customer.registered", {"name": ""})),
        (event("idea.voted", {"idea": "x"}), event("event.attended", {"event": "x"})),
        (
            event(customer=..., identity={"channel": "twitter", "handle": "@x"}),
            event(customer=..., identity={"channel": "twitter", "handle": "@@x"}),
        ),
        (event(customer="twitter:alice"), event(customer=..., identity={"channel": "twitter", "handle": "alice"})),
    ],
)
def test_different_content_has_a_different_digest(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert digest(a) != digest(b)


def test_content_digest_is_sha256_of_the_sorted_wire_form() -> None:
    import hashlib

    for type_ in MINIMAL:
        tp = parsed(event(type_, occurred_at="2026-10-01T11:00:00.1+02:00"))
        expected = hashlib.sha256(msgspec.json.encode(to_wire(tp), order="sorted")).digest()
        assert content_digest(tp) == expected
