"""parse(): raw bytes to a normalised Touchpoint or a Rejected, in the order of checks of SPEC §2."""
from __future__ import annotations

import hashlib
import json
import re
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from commands.instants import TIMESTAMP_PATTERN
from commands.outcomes import Rejected
from commands.touchpoints import (
    CATALOGUE,
    CHANNEL_PATTERN,
    CURRENCY_PATTERN,
    CUSTOMER_PATTERN,
    ID_PATTERN,
    IDENTITY_CHANNEL_PATTERN,
    Channel,
    Customer,
    EventId,
    Identity,
    IdentityLinked,
    Source,
    Strict,
    SurveyAnswered,
    Touchpoint,
    personal_fields,
)

MAX_BYTES = 64 * 1024
FUTURE_LIMIT = timedelta(hours=24)

# RFC 3339 date-time (§5.6), offset required, at most microseconds. Its note allows lower-case
# "t" and "z"; the space separator of the other note is not the ABNF and is refused. [0-9], not
# \d, which would take any Unicode digit. Calendar validity is left to datetime.fromisoformat.
Timestamp = typing.Annotated[str, msgspec.Meta(pattern=TIMESTAMP_PATTERN)]


class _Wire(Strict, frozen=True, tag_field="type", kw_only=True):
    """The top level as sent; one tagged subclass per catalogue type, so one pass decodes it all."""

    id: EventId
    occurred_at: Timestamp
    source: Source
    channel: Channel
    customer: Customer | UnsetType = UNSET
    identity: Identity | UnsetType = UNSET
    data: Any = UNSET


def _wire_struct(name: str, data: type[Strict]) -> type[_Wire]:
    return msgspec.defstruct(  # type: ignore[return-value]
        "Wire" + data.__name__, [("data", data | UnsetType, UNSET)], bases=(_Wire,), tag=name
    )


_WIRES = {name: _wire_struct(name, e.data) for name, e in CATALOGUE.items()}
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(typing.Union[tuple(_WIRES.values())])  # noqa: UP007


class _Shape(msgspec.Struct):
    """The leanest reading of an input: an object, and its `type` if any. Every value, `type`'s
    too, is only checked and skipped over (no number is too large to skip), so this says
    "well-formed" whatever the values are."""

    type: msgspec.Raw | UnsetType = UNSET


_shape_decoder = msgspec.json.Decoder(_Shape)

def _empty_data(data: type[Strict]) -> Strict | None:
    """What an omitted `data` means (§1): the type's empty data, or None when a field is required."""
    try:
        return data()
    except TypeError:
        return None


_EMPTY_DATA = {name: _empty_data(e.data) for name, e in CATALOGUE.items()}


def normalise_identity(channel: str, handle: str) -> tuple[str, str]:
    """SPEC §1: the channel lower-cased, the handle stripped of one leading `@` and case-folded."""
    return channel.lower(), handle.removeprefix("@").casefold()


def parse(raw: bytes, now: datetime) -> Touchpoint[Any] | Rejected:
    """Check one input in the order of SPEC §2; returns for any bytes, never raises.

    `now` (tz-aware) is when the engine received it: the clock of `future_timestamp`."""
    if len(raw) > MAX_BYTES:
        return Rejected("too_large", f"{len(raw)} bytes, over the limit of {MAX_BYTES}")
    try:
        wire = _decoder.decode(raw)
    except msgspec.ValidationError as e:
        return _refusal(raw, e)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _malformed(raw)
    except RecursionError:
        return Rejected("malformed", "not JSON: nested too deeply")
    customer, identity, event_id = _WHOSE_AND_WHICH
    if raw.count(customer) > 1 or raw.count(identity) > 1 or raw.count(event_id) > 1:  # then the precise look
        repeated = _repeated_name(raw)
        if repeated is not None:
            return Rejected("schema", f"{repeated}: given more than once")
    return _normalise(wire, now)


# The names that say whose event it is and which: given twice, the typed decode keeps the last
# value, so the event would go to another profile (and out of reach of the first one's erasure)
# or under another id than the producer may have meant. Each name occurs once in a valid event
# (a string value equal to one, rare, costs the precise look and nothing else). Counting them is
# ~1 µs an input; looking for every repeated name this way was 3–6 µs, too much for the writer.
_WHOSE_AND_WHICH = (b'"customer"', b'"identity"', b'"id"')


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its name/value pairs in order, repeated names kept."""


def _repeated_name(raw: bytes) -> str | None:
    """The path of the first name an object of the input repeats (`customer`, `data.rating`), or
    None. I-JSON (RFC 7493) forbids repeated names. (A name spelled with escapes, `"\\u0069d"`,
    is not counted above: no producer's encoder writes one.)"""
    try:
        pairs = json.loads(raw, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):  # msgspec read it; should json not, it says nothing more
        return None
    return _first_repeat(pairs, "")


def _first_repeat(value: Any, path: str) -> str | None:
    """The catalogue's events hold objects and scalars only (the typed decode let this one by)."""
    if not isinstance(value, _Pairs):
        return None
    seen: set[str] = set()
    for name, _ in value:
        if name in seen:
            return f"{path}.{name}" if path else name
        seen.add(name)
    for name, item in value:
        found = _first_repeat(item, f"{path}.{name}" if path else name)
        if found is not None:
            return found
    return None


def _malformed(raw: bytes) -> Rejected:
    """Why an input is not a JSON object."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return Rejected("malformed", "not JSON: starts with a byte order mark (EF BB BF); send UTF-8 without it")
    try:
        raw.decode("utf-8")
        _shape_decoder.decode(raw)
    except UnicodeDecodeError as e:
        return Rejected("malformed", f"not UTF-8: {e.reason} at byte {e.start}")
    except msgspec.ValidationError:
        return Rejected("malformed", "not a JSON object")
    except msgspec.DecodeError as e:
        if _SURROGATE_RE.search(raw):
            # msgspec calls an unpaired surrogate escape "truncated"; I-JSON forbids it either way,
            # and it could not be stored as UTF-8.
            return Rejected("malformed", "not JSON: truncated, or an unpaired surrogate (\\ud800-\\udfff)")
        return Rejected("malformed", f"not JSON: {e}")
    except RecursionError:
        return Rejected("malformed", "not JSON: nested too deeply")
    return Rejected("malformed", "not JSON")  # pragma: no cover - the typed decode refused it as JSON


_SURROGATE_RE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refusal(raw: bytes, error: msgspec.ValidationError) -> Rejected:
    """A typed decode failed: malformed, unknown_type or schema, in that order of checks.

    The typed decode stops at the first error, maybe before the end of the input: the rest is
    checked here, so a broken input is `malformed` whatever came first."""
    try:
        raw.decode("utf-8")
        shape = _shape_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _malformed(raw)
    if isinstance(shape.type, UnsetType):
        return Rejected("unknown_type", "type: required field missing")
    type_name = _string(shape.type)
    if type_name is None:
        return Rejected("unknown_type", f"type: expected str, got {_kind(shape.type)}")
    if type_name not in CATALOGUE:
        return Rejected("unknown_type", f"type: {_clip(type_name)!r} is not in the catalogue")
    return Rejected("schema", _schema_detail(type_name, str(error)))


_JSON_KINDS = {b'"': "str", b"{": "object", b"[": "array", b"t": "bool", b"f": "bool", b"n": "null"}


def _kind(value: msgspec.Raw) -> str:
    """The kind of JSON value `value` holds, in msgspec's words (`int`, `float`, …), as the other
    details say it; from its first byte, and for a number its form (it is well-formed)."""
    kind = _JSON_KINDS.get(memoryview(value)[:1].tobytes())
    if kind is not None:
        return kind
    return "float" if any(c in bytes(value) for c in b".eE") else "int"


def _string(value: msgspec.Raw) -> str | None:
    """The JSON string `value` holds, or None when it holds another kind of value."""
    return msgspec.json.decode(value, type=str) if _kind(value) == "str" else None


def _normalise(wire: _Wire, now: datetime) -> Touchpoint[Any] | Rejected:
    """The checks msgspec's types cannot say, then the normal form (§1, §2)."""
    name: str = type(wire).__struct_config__.tag  # type: ignore[assignment]
    event = CATALOGUE[name]
    try:
        occurred_at = datetime.fromisoformat(wire.occurred_at.upper()).astimezone(UTC)
    except ValueError:
        return Rejected("schema", "occurred_at: not a valid date and time")
    except OverflowError:
        return Rejected("schema", "occurred_at: out of range in UTC")

    identity = wire.identity
    if (wire.customer is UNSET) == (identity is UNSET):
        return Rejected("schema", "customer: exactly one of customer/identity is required")
    if isinstance(identity, Identity):
        if event.requires_customer:
            return Rejected("schema", f"customer: {name} requires customer, not identity")
        channel, handle = normalise_identity(identity.channel, identity.handle)
        if not handle:
            return Rejected("schema", "identity.handle: empty after normalisation")
        identity = Identity(channel, handle)

    data = wire.data
    if data is UNSET:
        data = _EMPTY_DATA[name]
        if data is None:
            return Rejected("schema", "data: required field missing")
    elif isinstance(data, SurveyAnswered):
        if data.nps is None:
            data = msgspec.structs.replace(data, nps=UNSET)
    elif isinstance(data, IdentityLinked):
        channel, handle = normalise_identity(data.channel, data.handle)
        if not handle:
            return Rejected("schema", "data.handle: empty after normalisation")
        data = IdentityLinked(channel, handle)

    # Comparing instants, not texts: the offset the producer used does not matter.
    if occurred_at > now + FUTURE_LIMIT:
        return Rejected("future_timestamp", "occurred_at: more than 24 hours after the engine's clock")
    return Touchpoint(
        id=wire.id,
        type=name,
        occurred_at=occurred_at,
        source=wire.source,
        channel=wire.channel,
        customer=wire.customer,
        identity=identity,
        data=data,
    )


def content_digest(tp: Touchpoint[Any]) -> bytes:
    """SHA-256 of the sorted JSON of `to_wire(tp)`: equal exactly for the "same content" of §2
    (instants, not offsets; normalised handles; omitted data as {}; defaults filled)."""
    return digest_of(canonical_json(tp))


def digest_of(canonical: bytes) -> bytes:
    """`content_digest` of the event whose `canonical_json` is `canonical` (the log encodes each
    accepted event once and takes both the digest and the record's event from that)."""
    return hashlib.sha256(canonical).digest()


# The first byte of an impersonal digest, which is 33 bytes long: a content digest is 32, and one
# in 256 of them begins with this byte too (the length tells them apart, found by a probe).
IMPERSONAL = b"\x01"
_DIGEST_SIZE = hashlib.sha256().digest_size


def is_impersonal(digest: bytes) -> bool:
    return len(digest) == len(IMPERSONAL) + _DIGEST_SIZE and digest.startswith(IMPERSONAL)


def impersonal_digest(tp: Touchpoint[Any]) -> bytes:
    """What stays comparable of an event once an erasure destroyed the keys of its personal fields
    (SPEC §6): the digest of its canonical JSON with each personal field it carries blanked. It
    tells `duplicate` from `duplicate_conflict` on everything else (`source`, `data.thread`, …)
    and says nothing of the fields: a guessed name gives the same digest as any other."""
    blanked = {name: "" for name in personal_fields(type(tp.data)) if isinstance(getattr(tp.data, name), str)}
    if blanked:
        tp = msgspec.structs.replace(tp, data=msgspec.structs.replace(tp.data, **blanked))
    return IMPERSONAL + digest_of(canonical_json(tp))


def canonical_json(tp: Touchpoint[Any]) -> bytes:
    """The sorted compact JSON of `to_wire(tp)`, which is its RFC 8785 form (engine/chain.py):
    what `content_digest` hashes, and the event as a log record holds it."""
    # Encoding the Struct with sorted keys writes the same bytes as encoding to_wire(tp) sorted
    # (tests check it), without building the dict.
    return _sorted_encoder.encode(tp)


_sorted_encoder = msgspec.json.Encoder(order="sorted")


# --- details: msgspec's words, in the contract's dotted paths -----------------------------------

# msgspec writes a failed pattern as its repr(): the key it is found under here.
_PATTERN_WORDS = {
    repr(pattern): words
    for pattern, words in [
        (ID_PATTERN, "without control characters"),
        (CUSTOMER_PATTERN, "not starting with '~'"),
        (CHANNEL_PATTERN, "matching [a-z0-9_]{1,32}"),
        (IDENTITY_CHANNEL_PATTERN, "matching [A-Za-z0-9_]{1,32}"),
        (CURRENCY_PATTERN, "of 3 upper-case letters"),
        (TIMESTAMP_PATTERN, "in RFC 3339 with an offset (Z or ±hh:mm) and at most 6 fractional digits"),
    ]
}
_PATTERN_RE = re.compile(r"matching regex ('.*')", re.DOTALL)
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(.*)`\Z", re.DOTALL)
_MISSING_RE = re.compile(r"^Object missing required field `(.*)`\Z", re.DOTALL)


def _choices(data: type[Strict]) -> dict[str, tuple[str, ...]]:
    """The allowed values of each Literal field, for a detail that does not echo the value sent
    (it may be personal data, and details are stored in plain text)."""
    found: dict[str, tuple[str, ...]] = {}
    for field in msgspec.structs.fields(data):
        values: list[str] = []
        stack = [field.type]
        while stack:
            t = stack.pop()
            if typing.get_origin(t) is typing.Literal:
                values.extend(typing.get_args(t))
            else:
                stack.extend(typing.get_args(t))
        if values:
            found[f"data.{field.name}"] = tuple(values)
    return found


_CHOICES = {name: _choices(e.data) for name, e in CATALOGUE.items()}


def _schema_detail(type_name: str, message: str) -> str:
    """`Expected \\`int\\` <= 5 - at \\`$.data.rating\\`` becomes `data.rating: expected int <= 5`."""
    text, sep, path = message.rpartition(" - at `$")
    if sep:
        path = path[:-1].lstrip(".")
    else:
        text, path = message, ""
    if path == "type":
        # The decoder read one `type` and the shape another: the key came twice (JSON lets the
        # last one win, the tagged decoder refuses a second, different tag).
        return "type: given more than once, with different values"
    if m := _UNKNOWN_RE.match(text):
        return f"{_join(path, _clip(m.group(1)))}: unknown field"
    if m := _MISSING_RE.match(text):
        return f"{_join(path, m.group(1))}: required field missing"
    if text.startswith("Invalid enum value") and path in _CHOICES[type_name]:
        return f"{path}: expected one of {', '.join(_CHOICES[type_name][path])}"
    if m := _PATTERN_RE.search(text):
        words = _PATTERN_WORDS.get(m.group(1), f"matching {m.group(1)}")
        text = text[: m.start()] + words
    text = text.replace("`", "")
    return f"{path or '(top level)'}: {text[:1].lower()}{text[1:]}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
