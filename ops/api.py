"""The HTTP API: `POST /events` (SPEC §2) and what ops need to see the write side.

Litestar is the framework: it speaks msgspec natively (the same Structs as the wire) and serves an
OpenAPI document at /schema. `build_app` is a factory; the runtime owns the resources it is given.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.response import Stream
from litestar.types import ASGIApp

from commands.outcomes import REASONS, Accepted, Duplicate, Outcome, Rejected
from commands.parsing import MAX_BYTES
from engine.access import Access
from engine.chain import verify_chain
from engine.ingest import Ingest
from engine.jetstream import Consumer
from engine.log import Log
from engine.received import Received
from engine.settings import COMMIT_TIMEOUT
from ops.access_http import AccessGuard
from ops.answers import MAX_BODY, MAX_EVENTS, IngestAnswer, RejectedItem
from ops.audit import personal_reader, with_personal
from ops.dashboard import dashboard_routes
from ops.head_requests import HeadAsGet
from ops.loopback_hosts import LoopbackHostsOnly
from ops.metrics import metrics_surface
from ops.openapi_doc import document
from ops.read_api import (
    BadParameter,
    choice,
    decode_cursor,
    encode_cursor,
    is_whole,
    json_response,
    only,
    parse_as_of,
    parse_limit,
    query,
    read_routes,
    refuse_parameters,
)
from projections.reads import Reads
from projections.runner import Following

log = logging.getLogger("engage.api")

# A commit takes milliseconds; one unanswered this long is a hung disk or a stopped writer.
STALLED_AFTER = 10.0

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


class Problem(msgspec.Struct):
    error: str
    detail: str


class BodyRefused(Exception):
    """The body as a whole cannot be taken (SPEC §2 answers 400 / 413 / 415)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _retrieved(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("POST /events: a commit answered too late failed", exc_info=done.exception())


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(Problem(error, detail)), status_code=status, media_type=MediaType.JSON,
                    headers=headers)


def split_body(body: bytes, content_type: str) -> list[bytes]:
    """The raw inputs of one request: one JSON event, the elements of a JSON array, or NDJSON lines."""
    media, _, parameters = (part.strip().lower() for part in content_type.partition(";"))
    charset = next((value.strip().strip('"') for name, _, value in (p.partition("=") for p in parameters.split(";"))
                    if name.strip() == "charset"), "utf-8")
    if media in NDJSON_TYPES | JSON_TYPES and charset not in ("utf-8", "utf8"):
        raise BodyRefused(415, "unsupported_media_type", f"charset {charset!r}: events are UTF-8 (SPEC §1); "
                          "send the body in UTF-8, with charset=utf-8 or no charset")
    if media in NDJSON_TYPES:
        lines = [line.rstrip(b"\r") for line in body.split(b"\n")]
        items = [line for line in lines if line.strip()]
    elif media in JSON_TYPES:
        if body.lstrip()[:1] != b"[":
            return [body]  # one event: parse() decides what it is, as it would for a NATS message
        try:
            elements = msgspec.json.decode(body, type=list[msgspec.Raw])
            items = [_compact_when_large(bytes(element)) for element in elements]
        except msgspec.DecodeError as e:
            raise BodyRefused(400, "unparseable", f"the body is not a JSON array: {e}") from e
        except RecursionError:
            raise BodyRefused(400, "unparseable", "the body is not a JSON array of events: nested too deeply") from None
    else:
        raise BodyRefused(
            415, "unsupported_media_type",
            f"content-type {media or '(none)'!r}: send application/json (one event or an array) "
            "or application/x-ndjson (one event per line)",
        )
    if len(items) > MAX_EVENTS:
        raise BodyRefused(413, "too_many_events", f"{len(items)} events: at most {MAX_EVENTS} per request")
    return items


def _compact_when_large(element: bytes) -> bytes:
    """SPEC §1 measures an array element in its compact encoding; a short one needs no rewrite.
    Reformatted as text, never decoded: 60 MB of `[{},{},…]` decoded took 1.6 GB."""
    if len(element) <= MAX_BYTES:
        return element
    return msgspec.json.format(element, indent=-1)


class _IdOnly(msgspec.Struct):
    id: Any = None


# Only `id` is decoded, the rest skipped, as the log reads a reject's id (engine/log.py, _whose): a
# byte that is not UTF-8 inside another string does not hide the id in the answer when /rejects
# shows it (found by a probe).
_id_only = msgspec.json.Decoder(_IdOnly)


def sniff_id(raw: bytes) -> str | None:
    try:
        value = _id_only.decode(raw).id
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def answer(items: list[bytes], outcomes: list[Outcome]) -> IngestAnswer:
    result = IngestAnswer(0, 0, [])
    for index, (raw, outcome) in enumerate(zip(items, outcomes, strict=True)):
        if isinstance(outcome, Accepted):
            result.accepted += 1
        elif isinstance(outcome, Duplicate):
            result.duplicates += 1
        else:
            assert isinstance(outcome, Rejected)
            result.rejected.append(RejectedItem(index, sniff_id(raw), outcome.reason, outcome.detail))
    return result


def build_app(log_: Log, ingest: Ingest | None, reads: Reads | None = None,
              runner: Following | None = None, *,
              clock: Callable[[], datetime] = lambda: datetime.now(UTC), access: Access | None = None,
              commit_timeout: float = COMMIT_TIMEOUT, consumer: Consumer | None = None) -> ASGIApp:
    """The app over a log; without `ingest` it only reads (a replay served with --read-only). With
    `access` (engage up --auth) every call but /health and /schema needs a token of a role allowed."""

    @post("/events", status_code=200, summary="Send touchpoints (SPEC §2)")
    async def post_events(request: Request[Any, Any, Any]) -> Response[bytes]:
        """One event or an array of at most 1,000 (application/json), or NDJSON. Answers after the
        durable commit with the count of each outcome and every rejection's reason and detail."""
        # A parameter it does not take is refused before anything is committed: a producer that
        # meant `?dry_run=true` must not have its events written.
        if (bad := refuse_parameters(request)) is not None:
            return bad
        try:
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):  # the bytes would be decoded as if they were JSON
                raise BodyRefused(415, "unsupported_media_type",
                                  f"content-encoding {encoding!r}: send the body uncompressed")
            body = await request.body()
            items = split_body(body, request.headers.get("content-type", ""))
        except BodyRefused as refused:
            return problem(refused.status, refused.error, refused.detail)
        now = clock()
        assert ingest is not None  # the route exists only with ingest
        submitted = asyncio.ensure_future(ingest.submit([Received(raw, "http", now) for raw in items], "http"))
        try:
            # Shielded: on a timeout the commit goes on (and may yet land); only the wait ends.
            outcomes = await asyncio.wait_for(asyncio.shield(submitted), commit_timeout)
        except TimeoutError:
            submitted.add_done_callback(_retrieved)  # its outcome, or failure, is no one's now
            log.error("POST /events: the log did not answer within %.0f s", commit_timeout)
            return problem(504, "timeout", f"the log did not answer within {commit_timeout:.0f} s: the events may "
                                           "or may not be committed; send the same request again (ids make it safe)")
        except Exception:
            # Something is broken (disk full, database locked): nothing of the body was committed,
            # and the producer may send it again as it is (ids make retries idempotent).
            log.exception("POST /events: commit failed")
            return problem(503, "unavailable", "the events could not be committed; nothing was kept: retry")
        return Response(msgspec.json.encode(answer(items, outcomes)), media_type=MediaType.JSON)

    @get("/health", summary="Log head position, each projection's position and lag")
    async def health(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Now, whatever `as_of` says: positions and lag are the engine's state, not a read of
        the projections (which is what as_of dates). The parameters are checked all the same."""
        params = query(request)
        try:
            only(params, {"as_of"})
            parse_as_of(params.get("as_of"), clock)
        except BadParameter as e:
            return e.response()
        return json_response(await _health())

    async def _health() -> dict[str, Any]:
        # The runner's position first, once (each read is a read of its file), then the head. The
        # runner reads the log file itself, so it can fold a record before the writer's answer
        # gives the engine that head: it is caught up then, lag 0, never negative.
        # `position`: up to where the answers are whole; `folded`: how far the fold has read the
        # log, ahead of it only while a bulk fold (a first start on a long log) is not swept yet.
        following = None if runner is None else (runner.position, runner.folded, runner.error)
        now = log_.head  # one object: position and hash of the same instant
        head = now.position
        answer: dict[str, Any] = {"status": "ok", "log": {"head": head, "head_hash": now.hash}, "projections": {},
                                  "read_only": ingest is None}
        if runner is None and reads is not None:  # a replay: its read model stands still
            position = await reads.position()
            answer["projections"]["read-models"] = {"position": position, "folded": position,
                                                    "lag": head - position, "error": None}
        if following is not None:
            position, folded, error = following
            answer["projections"]["read-models"] = {"position": position, "folded": max(position, folded),
                                                    "lag": max(0, head - position), "error": error}
            if error is not None:
                answer["status"] = "degraded"
        if ingest is not None:
            error, waiting = ingest.failure, ingest.waiting_for_log()
            if error is None and waiting > min(STALLED_AFTER, commit_timeout):
                error = f"the log has not answered a commit for {waiting:.0f} s"
            answer["ingest"] = {"error": error}  # the last commit's failure, until one succeeds
            if error is not None:
                answer["status"] = "degraded"
        if consumer is not None:  # ingest from JetStream
            answer["nats"] = {"connected": consumer.connected, "error": consumer.error}
            if consumer.error is not None:
                answer["status"] = "degraded"
        return answer

    @get("/rejects", summary="The kept rejects (SPEC §2, §7)")
    async def rejects(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Every rejected input kept: id, reason, detail, received_at, via; oldest first. Parameters
        are checked as for every list (ops/read_api.py): 400 naming the one that is wrong."""
        params = query(request)
        try:
            # Like /stats' rejected counts, the kept rejects follow the whole log (SPEC §3): as_of
            # is taken, as by every read (§7), and checked, and dates nothing here.
            only(params, {"reason", "limit", "cursor", "as_of"})
            parse_as_of(params.get("as_of"), clock)
            limit, reason = parse_limit(params.get("limit")), choice(params, "reason", REASONS)
            after = decode_cursor(params.get("cursor"), "rejects", 1)
            if after is not None and not (is_whole(after[0]) and int(after[0]) < 2**63):  # SQLite's integers
                raise BadParameter("cursor", "not a cursor this list gave out")
        except BadParameter as e:
            return e.response()
        # One more than the page: a page that is exactly the last has no next cursor (as every list).
        rows = await asyncio.to_thread(log_.rejects, reason=reason, after=int(after[0]) if after else 0,
                                       limit=limit + 1)
        items = [{"id": r.id, "reason": r.reason, "detail": r.detail, "received_at": r.received_at, "via": r.via}
                 for r in rows[:limit]]
        last = str(rows[limit - 1].seq) if len(rows) > limit else None
        return json_response({"items": items, "next": None if last is None else encode_cursor("rejects", last)})

    @get("/audit/export", summary="The log as JSON Lines (SPEC §8); decrypt=true adds readable personal fields")
    async def audit_export(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
        """Every record in position order, as `engage export` writes it. With `decrypt=true`, the
        personal fields still readable go under `personal`, outside the hash."""
        params = query(request)
        try:
            only(params, {"decrypt"})
            decrypt = choice(params, "decrypt", ("true", "false")) == "true"
        except BadParameter as e:
            return e.response()
        async def lines() -> AsyncIterator[bytes]:
            # Records and keys of one instant (Log.snapshot): an erasure committed while this
            # streams is wholly in the export, its customer's fields unreadable, or not at all.
            with log_.snapshot() as snapshot:
                pages = snapshot.pages(1000)
                while page := await asyncio.to_thread(next, pages, None):
                    yield b"".join((with_personal(line, snapshot.key) if decrypt else line) + b"\n"
                                   for line in page)

        return Stream(lines(), media_type="application/x-ndjson", headers={"cache-control": "no-store"})

    verifying = asyncio.Lock()  # one at a time: each reads the whole log, on a thread the other reads share

    @get("/audit/verify", summary="Verify the hash chain (SPEC §8)")
    async def audit_verify(request: Request[Any, Any, Any]) -> Response[bytes]:
        if (refused := refuse_parameters(request)) is not None:
            return refused
        async with verifying:
            checked = await asyncio.to_thread(lambda: verify_chain(log_.iter_records()))
        broken = checked.broken
        return json_response({"ok": broken is None, "records": checked.records, "head_hash": checked.head_hash,
                              "broken": None if broken is None else {"position": broken.position,
                                                                     "problem": broken.problem}})

    def http_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        error = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        detail, headers = str(exc.detail), None
        if exc.status_code == 413:  # the framework's own words say nothing about what to do
            detail = (f"the body is over {MAX_BODY:,} bytes, more than {MAX_EVENTS:,} events of at most "
                      f"{MAX_BYTES:,} bytes: send it in several requests")
        if exc.status_code == 405 and exc.headers and "allow" in exc.headers:
            # RFC 9110 §15.5.6: a 405 names the methods that are allowed. GET brings HEAD (HeadAsGet).
            allowed = [m.strip() for m in exc.headers["allow"].split(",")]
            allowed += ["HEAD"] if "GET" in allowed and "HEAD" not in allowed else []
            headers = {"allow": ", ".join(sorted(allowed))}
            detail = f"{request.method} {request.url.path} is not allowed: use one of {', '.join(sorted(allowed))}"
        return problem(exc.status_code, error.get(exc.status_code, "error"), detail, headers)

    def internal_problem(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        """A defect, never a user's mistake: the traceback goes to the log, the caller gets the
        documented shape rather than the framework's."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal", "the engine could not answer this request; its log has the details")

    @post("/events", summary="Refused: this engine serves a directory read-only", status_code=405)
    async def read_only_events() -> Response[bytes]:
        return problem(405, "read_only", "this engine serves a directory read-only (engage up --read-only): "
                                         "send events to the engine that owns the log")

    routes: list[Any] = [health, rejects, audit_export, audit_verify]
    routes.append(post_events if ingest is not None else read_only_events)
    if reads is not None:
        routes += read_routes(reads, log_.reject_counts, clock, personal_reader(log_.key_lookup()))
    routes += dashboard_routes(log_, reads, clock)
    metric_routes, middleware = metrics_surface(log_, ingest, reads, runner)
    routes += metric_routes
    if access is not None:
        middleware.append(AccessGuard(access))  # inside the timer: refusals are timed too
    app = Litestar(
        route_handlers=routes,
        middleware=middleware,
        request_max_body_size=MAX_BODY,
        exception_handlers={HTTPException: http_problem, Exception: internal_problem},
        openapi_config=OpenAPIConfig(title="engage", version="1"),
        logging_config=None,  # the CLI configures logging (engine/logs.py); Litestar's default would replace it
        debug=False,
    )
    document(app.openapi_schema)
    return HeadAsGet(app if access is not None else LoopbackHostsOnly(app))
