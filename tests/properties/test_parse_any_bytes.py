"""parse() returns for any bytes (STYLE: errors are data), and valid events survive the log's round trip."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.outcomes import REASONS, Rejected
from commands.parsing import content_digest, normalise_identity, parse
from commands.touchpoints import CATALOGUE, CUSTOMER_PATTERN, Touchpoint, from_wire, to_wire
from tests.unit.test_parsing import MINIMAL, event

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)

# --- anything at all ----------------------------------------------------------------------------


def returns_an_outcome(raw: bytes) -> Touchpoint[Any] | Rejected:
    result = parse(raw, NOW)
    assert isinstance(result, Touchpoint | Rejected)
    if isinstance(result, Rejected):
        assert result.reason in REASONS[:5]
        result.detail.encode("utf-8")  # storable: no lone surrogate reaches a detail
    return result


@settings(max_examples=1000)
@given(st.binary(max_size=4096))
def test_any_bytes(raw: bytes) -> None:
    returns_an_outcome(raw)


FIELD_NAMES = sorted(
    {"id", "type", "occurred_at", "source", "channel", "customer", "identity", "data", "handle"}
    | {f.name for e in CATALOGUE.values() for f in msgspec.structs.fields(e.data)}
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from([*CATALOGUE, "", "2026-10-01T11:00:00Z", "@", "~x"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=10), json_values, max_size=9))
def test_any_json_object(obj: dict[str, Any]) -> None:
    returns_an_outcome(msgspec.json.encode(obj))


@given(json_values)
def test_any_json_value(value: Any) -> None:
    returns_an_outcome(msgspec.json.encode(value))


@settings(max_examples=500)
@given(st.sampled_from(list(MINIMAL)), st.data())
def test_any_field_of_a_valid_event_replaced(type_: str, data: st.DataObject) -> None:
    obj = event(type_)
    target = data.draw(st.sampled_from([k for k in obj if k != "type"] + ["data.*", "identity.*", "extra"]))
    value = data.draw(json_values)
    if target.endswith(".*"):
        outer = target[:-2]
        inner = obj.setdefault(outer, {}) if isinstance(obj.get(outer, {}), dict) else {}
        inner[data.draw(st.sampled_from(FIELD_NAMES))] = value
    else:
        obj[target] = value
    result = returns_an_outcome(msgspec.json.encode(obj))
    if isinstance(result, Rejected):
        assert result.reason in {"schema", "future_timestamp"}, result


@settings(max_examples=500)
@given(st.sampled_from(list(MINIMAL)), st.data())
def test_any_bytes_of_a_valid_event_changed(type_: str, data: st.DataObject) -> None:
    raw = bytearray(msgspec.json.encode(event(type_)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        match data.draw(st.sampled_from(["flip", "insert", "delete"])):
            case "flip":
                raw[at] = data.draw(st.integers(0, 255))
            case "insert":
                raw[at:at] = data.draw(st.binary(min_size=1, max_size=3))
            case "delete":
                del raw[at]
    returns_an_outcome(bytes(raw))


# --- valid events, generated from the catalogue's own types -------------------------------------

visible = st.characters(blacklist_categories=("Cc", "Cs"))


def strategy_for(t: mi.Type) -> st.SearchStrategy[Any]:
    match t:
        case mi.StrType(pattern=str(pattern)) if pattern != CUSTOMER_PATTERN:
            return st.from_regex(pattern, fullmatch=True)
        case mi.StrType(min_length=lo, max_length=hi):
            return st.text(min_size=lo or 0, max_size=12 if hi is None else hi)
        case mi.IntType(ge=lo, le=hi):
            return st.integers(min_value=lo, max_value=hi)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.LiteralType(values=values):
            return st.sampled_from(values)
        case mi.UnionType(types=types):
            return st.one_of(*(strategy_for(u) for u in types))
    raise AssertionError(f"no strategy for {t}")


@st.composite
def data_for(draw: st.DrawFn, type_: str) -> dict[str, Any]:
    info = mi.type_info(CATALOGUE[type_].data)
    assert isinstance(info, mi.StructType)
    out = {}
    for field in info.fields:
        if field.required or draw(st.booleans()):
            out[field.name] = draw(strategy_for(field.type))
    if type_ == "identity.linked" and not normalise_identity(out["channel"], out["handle"])[1]:
        out["handle"] = "x" + out["handle"]
    return out


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[str, datetime]:
    """An instant at most 24 h ahead of NOW, written in any RFC 3339 way."""
    instant = draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2026, 10, 2, 12)))
    instant = instant.replace(tzinfo=UTC)
    minutes = draw(st.integers(-(24 * 60 - 1), 24 * 60 - 1))
    local = instant.astimezone(timezone(timedelta(minutes=minutes)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{local.microsecond:06d}"
    digits = draw(st.integers(len(fraction.rstrip("0")), 6))  # as many as needed, or more
    if digits:
        text += "." + fraction[:digits]
    if minutes == 0 and draw(st.booleans()):
        text += draw(st.sampled_from(["Z", "z"]))
    else:
        sign = "+" if minutes >= 0 else "-"
        text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return text, instant


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    type_ = draw(st.sampled_from(list(CATALOGUE)))
    text, instant = draw(timestamps())
    obj: dict[str, Any] = {
        "id": draw(st.text(visible, min_size=1, max_size=128)),
        "type": type_,
        "occurred_at": text,
        "source": draw(st.text(min_size=1, max_size=64)),
        "channel": draw(st.from_regex(r"^[a-z0-9_]{1,32}\Z", fullmatch=True)),
    }
    if CATALOGUE[type_].requires_customer or draw(st.booleans()):
        obj["customer"] = draw(st.text(min_size=1, max_size=128).filter(lambda c: not c.startswith("~")))
    else:
        handle = draw(st.text(min_size=1, max_size=128).filter(lambda h: h not in {"@"}))
        channel = draw(st.from_regex(r"^[A-Za-z0-9_]{1,32}\Z", fullmatch=True))
        obj["identity"] = {"channel": channel, "handle": handle}
    payload: dict[str, Any] = draw(data_for(type_))
    send_empty: bool = draw(st.booleans())
    if payload or send_empty:  # an empty `data` may be sent or omitted (§1)
        obj["data"] = payload
    return obj, instant


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(valid_events())
def test_valid_events_are_accepted_and_round_trip(generated: tuple[dict[str, Any], datetime]) -> None:
    obj, instant = generated
    tp = parse(msgspec.json.encode(obj), NOW)
    assert isinstance(tp, Touchpoint), (tp, obj)
    assert tp.occurred_at == instant and tp.occurred_at.tzinfo is UTC
    stored = msgspec.json.decode(msgspec.json.encode(to_wire(tp)))  # as the log keeps it
    back = from_wire(stored)
    assert back == tp
    assert to_wire(back) == to_wire(tp)
    assert content_digest(back) == content_digest(tp)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_events(), timestamps(), st.data())
def test_the_digest_ignores_how_an_instant_is_written_and_key_order(
    generated: tuple[dict[str, Any], datetime], other: tuple[str, datetime], data: st.DataObject
) -> None:
    obj, instant = generated
    # The same instant in another offset: pick the other's offset only, keep our instant.
    text, _ = other
    offset = "+00:00" if text[-1] in "Zz" else text[-6:]
    sign = 1 if offset[0] == "+" else -1
    delta = sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    local = instant.astimezone(timezone(delta))
    rewritten = dict(data.draw(st.permutations(list(obj.items()))))
    rewritten["occurred_at"] = local.strftime("%Y-%m-%dT%H:%M:%S.%f") + offset
    a, b = parse(msgspec.json.encode(obj), NOW), parse(msgspec.json.encode(rewritten), NOW)
    assert isinstance(a, Touchpoint) and isinstance(b, Touchpoint)
    assert content_digest(a) == content_digest(b)
