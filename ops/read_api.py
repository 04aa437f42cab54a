"""Read routes of the HTTP API (SPEC §7): profiles, cases and statistics, for any `as_of`.

Keys may hold `~`, `:`, `/`, `%` and any unicode when URL-encoded: the server decodes `%2F` into a
slash before routing, so profile and case routes split the raw path themselves.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.handlers import HTTPRouteHandler

from engine.ingest import Ingest
from projections.reads import NotFound, Reads


class BadParameter(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name


def json_response(body: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type=MediaType.JSON)


def parse_as_of(value: str | None, clock: Callable[[], datetime]) -> datetime:
    if value is None:
        return clock()
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise BadParameter("as_of", f"{value!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise BadParameter("as_of", f"{value!r} has no offset: add Z or ±hh:mm")
    return moment.astimezone(UTC)


def path_segments(request: Request[Any, Any, Any], prefix: str) -> list[str]:
    """The decoded segments after `prefix`, split on the raw (still encoded) path."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    tail = raw.decode("latin-1").split("?", 1)[0][len(prefix):]
    return [unquote(part, encoding="utf-8", errors="strict") for part in tail.split("/")]


def read_routes(reads: Reads, ingest: Ingest, clock: Callable[[], datetime]) -> list[HTTPRouteHandler]:
    def bad(e: BadParameter) -> Response[bytes]:
        return json_response({"error": "bad_parameter", "parameter": e.name, "detail": str(e)}, 400)

    @get("/customers/{rest:path}", summary="A profile (SPEC §7)")
    async def customer(request: Request[Any, Any, Any], as_of: str | None = None) -> Response[bytes]:
        """A profile's identities, engagement, advocacy, cases and last_seen as of `as_of`."""
        try:
            moment = parse_as_of(as_of, clock)
            segments = path_segments(request, "/customers/")
        except BadParameter as e:
            return bad(e)
        except UnicodeDecodeError:
            return json_response({"error": "not_found"}, 404)
        if len(segments) != 1 or not segments[0]:
            return json_response({"error": "not_found", "detail": "this view of a profile comes later"}, 404)
        answer = await reads.customer(segments[0], moment)
        if isinstance(answer, NotFound):
            return json_response(answer.body, 404)
        return json_response(answer)

    @get("/cases/{rest:path}", summary="A support case with its SLA (SPEC §5, §7)")
    async def case(request: Request[Any, Any, Any], as_of: str | None = None) -> Response[bytes]:
        try:
            moment = parse_as_of(as_of, clock)
            segments = path_segments(request, "/cases/")
        except BadParameter as e:
            return bad(e)
        except UnicodeDecodeError:
            return json_response({"error": "not_found"}, 404)
        answer = await reads.case(segments[0], moment) if len(segments) == 1 else None
        if answer is None:
            return json_response({"error": "not_found"}, 404)
        return json_response(answer)

    @get("/stats", summary="Totals as of an instant (SPEC §7)")
    async def stats(as_of: str | None = None) -> Response[bytes]:
        try:
            moment = parse_as_of(as_of, clock)
        except BadParameter as e:
            return bad(e)
        rejected = ingest.log.reject_counts()
        events = await reads.position()
        return json_response(await reads.stats(moment, events, rejected))

    return [customer, case, stats]
