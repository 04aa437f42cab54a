"""Read routes of the HTTP API (SPEC §7): profiles, cases and statistics, for any `as_of`.

Every parameter is checked here and a bad one answers 400 naming it. Keys may hold `~`, `:`, `/`,
`%` and any unicode when URL-encoded: the server decodes `%2F` into a slash before routing, so
profile and case routes split the raw path themselves.
"""
from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.handlers import HTTPRouteHandler

from commands.instants import TIMESTAMP, OutOfRange, parse_instant, rfc3339
from commands.parsing import normalise_identity
from engine.access import PERSONAL
from ops.access_http import role_of
from projections.reads import EARLIEST_AS_OF, LATEST_AS_OF, NotFound, Reads
from projections.vocabulary import LEVELS, PRIORITIES, STATES, TIERS


class BadParameter(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name

    def response(self) -> Response[bytes]:
        """400 naming the parameter, as every call answers it."""
        return json_response({"error": "bad_parameter", "parameter": self.name, "detail": str(self)}, 400)


def json_response(body: Any, status: int = 200) -> Response[bytes]:
    # Answers may hold personal data (timelines, for the roles that may read it): never cached.
    return Response(msgspec.json.encode(body), status_code=status, media_type=MediaType.JSON,
                    headers={"cache-control": "no-store"})


def parse_as_of(value: str | None, clock: Callable[[], datetime]) -> datetime:
    if value is None:
        return clock()
    answered = f"the instants answered are {rfc3339(EARLIEST_AS_OF)} to {rfc3339(LATEST_AS_OF)}"
    try:
        moment = parse_instant(value)
    except OutOfRange as e:
        raise BadParameter("as_of", f"{value!r} {e}: {answered}") from None
    except ValueError as e:
        if " " in value and TIMESTAMP.match(value.replace(" ", "+")):
            raise BadParameter("as_of", f"{value!r}: a + in a URL's query reads as a space, write it %2B") from None
        raise BadParameter("as_of", f"{value!r} {e}") from None
    if not EARLIEST_AS_OF <= moment <= LATEST_AS_OF:
        raise BadParameter("as_of", f"{value!r} is out of range: {answered}")
    return moment


def parse_limit(value: str | None) -> int:
    if value is None:
        return 100
    if not is_whole(value) or not 1 <= int(value) <= 1000:
        raise BadParameter("limit", f"{value!r} is not a whole number from 1 to 1000")
    return int(value)


def canonical_identity(key: str) -> str | None:
    """The anonymous profile key as the engine writes it (SPEC §1, §3: the channel lower-cased,
    one leading @ stripped, the handle case-folded), or None when `key` is no identity key."""
    channel, sep, handle = key.removeprefix("~").partition(":")
    if not key.startswith("~") or not sep:
        return None
    channel, handle = normalise_identity(channel, handle)
    return f"~{channel}:{handle}" if handle else None


def _not_found(request: Request[Any, Any, Any], key: str, view: str | None, missing: NotFound) -> Response[bytes]:
    """404 as SPEC §7 says; but an identity key written as a person would (`~Twitter:@Alice`) is
    redirected (308) to the key the engine knows it by (`~twitter:alice`), whatever is there. Only
    when the key as given names nothing: `~twitter:@bob` is the profile of the handle `@@bob`."""
    canonical = canonical_identity(key)
    if missing.body != {"error": "not_found"} or canonical is None or canonical == key:
        return json_response(missing.body, 404)
    location = "/customers/" + quote(canonical, safe="") + (f"/{view}" if view else "")
    if request.url.query:
        location += "?" + request.url.query
    return Response(msgspec.json.encode({"error": "moved", "customer": canonical}), status_code=308,
                    media_type=MediaType.JSON, headers={"location": location})


def is_whole(value: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '²' (which int() refuses) and '５'."""
    return value.isascii() and value.isdigit()


class Query(dict[str, str]):
    """A request's query parameters, each name once; `repeated` names those given more than once."""

    repeated: list[str]


def query(request: Request[Any, Any, Any]) -> Query:
    params, repeated = Query(), []
    for name, value in request.query_params.multi_items():
        if name in params:
            repeated.append(name)
        else:
            params[name] = value
    params.repeated = repeated
    return params


def choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name)
    if value is not None and value not in allowed:
        raise BadParameter(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def encode_cursor(kind: str, *parts: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([kind, *parts])).decode().rstrip("=")


# An instant as the read models store it (projections/store.py, sortable): what a timeline cursor holds.
SORTABLE_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def decode_cursor(value: str | None, kind: str, size: int) -> list[str] | None:
    """The parts of a cursor this API gave out for this list; a forged or foreign one is a 400."""
    if value is None:
        return None
    try:
        parts = msgspec.json.decode(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), type=list[str])
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        parts = []
    if len(parts) != size + 1 or parts[0] != kind:
        raise BadParameter("cursor", "not a cursor this list gave out")
    return parts[1:]


def only(params: Mapping[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) if allowed else "none"
        raise BadParameter(unknown[0], f"unknown parameter; this call takes {takes}")
    repeated = getattr(params, "repeated", [])
    if repeated:  # which one was meant? Say so rather than take the first silently
        raise BadParameter(repeated[0], "given more than once: give it once")


def refuse_parameters(request: Request[Any, Any, Any]) -> Response[bytes] | None:
    """For a call that takes no parameter: the 400 naming one given, or None."""
    try:
        only(query(request), set())
    except BadParameter as e:
        return e.response()
    return None


def path_segments(request: Request[Any, Any, Any], prefix: str) -> list[str]:
    """The decoded segments after `prefix`, split on the raw (still encoded) path."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    tail = raw.decode("latin-1").split("?", 1)[0][len(prefix):]
    return [unquote(part, encoding="utf-8", errors="strict") for part in tail.split("/")]


def read_routes(reads: Reads, reject_counts: Callable[[], dict[str, int]], clock: Callable[[], datetime],
                decrypt: Callable[[str], str | None] | None = None) -> list[HTTPRouteHandler]:
    """The read API. `decrypt` reads a stored personal field back: timelines show personal values
    to the roles allowed to read them (agent, admin), never without --auth."""

    def reveal(request: Request[Any, Any, Any]) -> Callable[[str], str | None] | None:
        return decrypt if decrypt is not None and role_of(request.scope) in PERSONAL else None

    def page(items: list[Any], next_cursor: str | None) -> Response[bytes]:
        return json_response({"items": items, "next": next_cursor})

    @get("/customers", summary="The profiles, filterable by level, tier and marketing consent (SPEC §7)")
    async def customers(request: Request[Any, Any, Any]) -> Response[bytes]:
        params = query(request)
        try:
            only(params, {"as_of", "limit", "cursor", "level", "tier", "marketing"})
            moment, limit = parse_as_of(params.get("as_of"), clock), parse_limit(params.get("limit"))
            level, tier = choice(params, "level", LEVELS), choice(params, "tier", TIERS)
            marketing = {None: None, "granted": True, "not_granted": False}[
                choice(params, "marketing", ("granted", "not_granted"))]
            after = decode_cursor(params.get("cursor"), "customers", 1)
        except BadParameter as e:
            return e.response()
        items, last = await reads.customers(moment, level=level, tier=tier, after=after[0] if after else "",
                                            limit=limit, marketing=marketing)
        return page(items, None if last is None else encode_cursor("customers", last))

    @get("/customers/{rest:path}", summary="A profile, its explanation or its timeline (SPEC §7)")
    async def customer(request: Request[Any, Any, Any]) -> Response[bytes]:
        params = query(request)
        try:
            segments = path_segments(request, "/customers/")
        except UnicodeDecodeError:
            return json_response({"error": "not_found"}, 404)
        view = segments[1] if len(segments) == 2 else None
        if len(segments) > 2 or not segments[0] or view not in (None, "explain", "timeline"):
            return json_response({"error": "not_found"}, 404)
        key = segments[0]
        try:
            if view == "timeline":
                only(params, {"as_of", "limit", "cursor"})
            else:
                only(params, {"as_of"})
            moment = parse_as_of(params.get("as_of"), clock)
            if view == "timeline":
                limit = parse_limit(params.get("limit"))
                before = decode_cursor(params.get("cursor"), "timeline", 2)
                if before is not None and not SORTABLE_INSTANT.fullmatch(before[0]):
                    raise BadParameter("cursor", "not a cursor this list gave out")  # else a first page again
        except BadParameter as e:
            return e.response()
        if view is None:
            answer: Any = await reads.customer(key, moment)
        elif view == "explain":
            answer = await reads.explain(key, moment)
        else:
            found = await reads.timeline(key, moment, before=(before[0], before[1]) if before else None, limit=limit,
                                         reveal=reveal(request))
            if isinstance(found, NotFound):
                return _not_found(request, key, view, found)
            items, last = found
            return page(items, None if last is None else encode_cursor("timeline", *last))
        if isinstance(answer, NotFound):
            return _not_found(request, key, view, answer)
        return json_response(answer)

    @get("/cases", summary="The cases, filterable by state, priority, agent, team, breached (SPEC §7)")
    async def cases(request: Request[Any, Any, Any]) -> Response[bytes]:
        params = query(request)
        try:
            only(params, {"as_of", "limit", "cursor", "state", "priority", "agent", "team", "breached"})
            moment, limit = parse_as_of(params.get("as_of"), clock), parse_limit(params.get("limit"))
            choice(params, "state", STATES)
            choice(params, "priority", PRIORITIES)
            breached = {None: None, "true": True, "false": False}.get(choice(params, "breached", ("true", "false")))
            after = decode_cursor(params.get("cursor"), "cases", 1)
        except BadParameter as e:
            return e.response()
        filters: dict[str, str] = {k: params[k] for k in ("state", "priority", "agent", "team") if k in params}
        items, last = await reads.cases(moment, filters=filters, breached=breached,
                                        after=after[0] if after else "", limit=limit)
        return page(items, None if last is None else encode_cursor("cases", last))

    @get("/cases/{rest:path}", summary="A support case with its SLA (SPEC §5, §7)")
    async def case(request: Request[Any, Any, Any]) -> Response[bytes]:
        params = query(request)
        try:
            only(params, {"as_of"})
            moment = parse_as_of(params.get("as_of"), clock)
            segments = path_segments(request, "/cases/")
        except BadParameter as e:
            return e.response()
        except UnicodeDecodeError:
            return json_response({"error": "not_found"}, 404)
        answer = await reads.case(segments[0], moment) if len(segments) == 1 else None
        if answer is None:
            return json_response({"error": "not_found"}, 404)
        return json_response(answer)

    @get("/stats", summary="Totals as of an instant (SPEC §7)")
    async def stats(request: Request[Any, Any, Any]) -> Response[bytes]:
        params = query(request)
        try:
            only(params, {"as_of"})
            moment = parse_as_of(params.get("as_of"), clock)
        except BadParameter as e:
            return e.response()
        counted = await asyncio.to_thread(reject_counts)  # a GROUP BY over every kept reject: off the loop
        async with reads.snapshot():  # `events` is the position the counts stand at
            return json_response(await reads.stats(moment, await reads.position(), counted))

    @get("/community/{rest:path}", summary="A member's public view, as other members see it (consent-gated)")
    async def community(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Only while the member's latest `community_profile` consent grants it: public identities,
        engagement level, counts of public contributions. Otherwise 404, exactly as for an unknown
        key, so that nothing is revealed."""
        params = query(request)
        try:
            only(params, {"as_of"})
            moment = parse_as_of(params.get("as_of"), clock)
            segments = path_segments(request, "/community/")
        except BadParameter as e:
            return e.response()
        except UnicodeDecodeError:
            segments = []
        answer = await reads.community(segments[0], moment) if len(segments) == 1 and segments[0] else None
        if answer is None:
            return json_response({"error": "not_found"}, 404)
        return json_response(answer)

    return [customers, customer, cases, case, stats, community]
