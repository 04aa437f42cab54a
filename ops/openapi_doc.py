"""The query and path parameters of the OpenAPI document (/schema), and its answers (ops/openapi_answers.py).

The routes read their parameters themselves, so that a bad one is a 400 naming it (ops/read_api.py)
and keys may hold encoded slashes (raw-path splitting). Litestar therefore cannot see them in the
handlers' signatures: they are described here, once, and written into the generated document, so
that clients and fuzzers (tests/integration/test_api_fuzz.py) know every parameter and its values.
"""
from __future__ import annotations

from typing import Any

from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    RequestBody,
    Schema,
    SecurityScheme,
)

from commands.instants import rfc3339
from commands.outcomes import REASONS
from ops.openapi_answers import ANSWERS
from projections.reads import EARLIEST_AS_OF, LATEST_AS_OF
from projections.vocabulary import LEVELS, PRIORITIES, STATES, TIERS

_TEXT = Schema(type=OpenAPIType.STRING)
AS_OF = ("as_of", Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
         f"RFC 3339 instant with offset, from {rfc3339(EARLIEST_AS_OF)} to {rfc3339(LATEST_AS_OF)}; default now")
LIMIT = ("limit", Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=1000), "items per page (default 100)")
CURSOR = ("cursor", _TEXT, "the `next` of the previous page")


def _choice(name: str, values: tuple[str, ...], description: str) -> tuple[str, Schema, str]:
    return name, Schema(type=OpenAPIType.STRING, enum=list(values)), description


QUERY: dict[tuple[str, str], list[tuple[str, Schema, str]]] = {
    ("/customers", "get"): [AS_OF, LIMIT, CURSOR, _choice("level", LEVELS, "engagement level as of T"),
                            _choice("tier", TIERS, "advocacy tier as of T"),
                            _choice("marketing", ("granted", "not_granted"), "marketing consent as of T")],
    ("/customers/{rest}", "get"): [AS_OF, (LIMIT[0], LIMIT[1], f"{LIMIT[2]}; …/timeline only"),
                                   (CURSOR[0], CURSOR[1], f"{CURSOR[2]}; …/timeline only")],
    ("/cases", "get"): [AS_OF, LIMIT, CURSOR, _choice("state", STATES, "case state"),
                        _choice("priority", PRIORITIES, "case priority"), ("agent", _TEXT, "assigned agent"),
                        ("team", _TEXT, "assigned team"), _choice("breached", ("true", "false"), "an SLA breached")],
    ("/cases/{rest}", "get"): [AS_OF],
    ("/community/{rest}", "get"): [AS_OF],
    ("/stats", "get"): [AS_OF],
    ("/rejects", "get"): [AS_OF, LIMIT, CURSOR, _choice("reason", REASONS, "reject reason")],
    ("/health", "get"): [AS_OF],
    ("/audit/export", "get"): [_choice("decrypt", ("true", "false"), "add readable personal fields")],
    ("/", "get"): [AS_OF],
    ("/dashboard/panels", "get"): [AS_OF],
    ("/dashboard/profile", "get"): [AS_OF, ("key", Schema(type=OpenAPIType.STRING, min_length=1), "profile key")],
}
REST = ("the key or case id, URL-encoded: it may hold `~`, `:`, `/`, `%` and any unicode; "
        "`/customers/{key}/explain` and `/customers/{key}/timeline` follow it")


_ERROR = Schema(type=OpenAPIType.OBJECT, required=["error", "detail"], properties={
    "error": Schema(type=OpenAPIType.STRING, description="a code: bad_parameter, not_found, unauthorized, …"),
    "parameter": Schema(type=OpenAPIType.STRING, description="the parameter that is wrong (400 bad_parameter)"),
    "detail": Schema(type=OpenAPIType.STRING, description="what is wrong, and what to do")})
# SPEC §6, §7: a profile or case that is not there says why, with no detail; a route that is not there
# has the error shape above.
_NOT_FOUND = Schema(type=OpenAPIType.OBJECT, required=["error"], properties={
    "error": Schema(type=OpenAPIType.STRING, description="not_found; erased (SPEC §6); linked: an anonymous profile "
                    "now part of `customer`; moved (308): `customer` is the key as the engine writes it"),
    "customer": Schema(type=OpenAPIType.STRING, description="the customer a linked identity belongs to (linked), "
                       "or the normalised key (moved)"),
    "detail": Schema(type=OpenAPIType.STRING, description="what is wrong (a route that does not exist)")})
_ANSWER = Schema(type=OpenAPIType.OBJECT, description="the answer SPEC §7 gives for this call")
# What the routes answer besides JSON: Litestar describes every body it cannot see as a string.
_MEDIA = {"/": "text/html", "/dashboard/panels": "text/html", "/dashboard/profile": "text/html",
          "/metrics": "text/plain", "/audit/export": "application/x-ndjson"}
_ERRORS = {"400": "a parameter or the body is wrong: `parameter` names it",
           "401": "with --auth: no token, or an unknown one", "403": "with --auth: the role may not call this",
           "404": "no such key, case or route (an erased profile: error `erased`)"}
_INGEST_ERRORS = {"400": "the body is not a JSON array (error `unparseable`)",
                  "413": "over 1,000 events, or over the size limit", "415": "another content type, charset or "
                  "content-encoding", "503": "nothing was committed: send the same request again",
                  "504": "the log did not answer in time: send the same request again (ids make it safe)",
                  "401": _ERRORS["401"], "403": _ERRORS["403"]}


def _media(description: str, media: str, schema: Schema) -> OpenAPIResponse:
    return OpenAPIResponse(description=description, content={media: OpenAPIMediaType(schema=schema)})


def _describe_answers(path: str, method: str, operation: Any) -> None:
    """Responses as they are: JSON objects, the documented error shape, the other media types."""
    media = _MEDIA.get(path, "application/json")
    ok = next((str(code) for code in (operation.responses or {}) if str(code).startswith("2")), "200")
    answer = ANSWERS.get((path, method), _ANSWER) if media == "application/json" else _TEXT
    operation.responses = {ok: _media("the answer", media, answer)}
    errors = _INGEST_ERRORS if (path, method) == ("/events", "post") else _ERRORS
    for code, description in errors.items():
        operation.responses[code] = _media(description, "application/json", _NOT_FOUND if code == "404" else _ERROR)
    if path == "/customers/{rest}":
        operation.responses["308"] = _media(
            "an identity key not written as the engine writes it (`~Twitter:@Alice`): Location names it "
            "(`~twitter:alice`)", "application/json", _NOT_FOUND)
    if (path, method) == ("/events", "post"):
        body = Schema(type=OpenAPIType.STRING, description="touchpoint events, SPEC §1")
        operation.request_body = RequestBody(required=True, content={
            "application/json": OpenAPIMediaType(schema=Schema(
                one_of=[Schema(type=OpenAPIType.OBJECT), Schema(type=OpenAPIType.ARRAY, max_items=1000)])),
            "application/x-ndjson": OpenAPIMediaType(schema=body)})


def document(openapi: OpenAPI) -> None:
    """Write the parameters and answers above into Litestar's generated document (before it is
    first served), and the two ways to send a token under --auth."""
    for path, path_item in (openapi.paths or {}).items():
        for method in ("get", "post"):
            if (answered := getattr(path_item, method, None)) is not None:
                _describe_answers(path, method, answered)
    components = openapi.components if isinstance(openapi.components, Components) else Components()
    components.security_schemes = {
        "bearer": SecurityScheme(type="http", scheme="bearer", description="with --auth: a token of the README"),
        "basic": SecurityScheme(type="http", scheme="basic", description="with --auth, for a browser: any user "
                                "name, the token as password")}
    openapi.components = components
    openapi.security = [{}, {"bearer": []}, {"basic": []}]  # {}: an engine without --auth asks for none
    for (path, method), params in QUERY.items():
        item = (openapi.paths or {}).get(path)
        operation: Any = None if item is None else getattr(item, method)
        if operation is None:
            continue  # a route this app does not have (read-only, no read models)
        kept = [p for p in operation.parameters or [] if isinstance(p, Parameter) and p.param_in == "path"]
        for p in kept:  # `{rest:path}` is documented as a URI otherwise
            p.schema = Schema(type=OpenAPIType.STRING, min_length=1)
            p.description = REST
        operation.parameters = kept + [Parameter(name=name, param_in="query", required=False, schema=schema,
                                                 description=description) for name, schema, description in params]
