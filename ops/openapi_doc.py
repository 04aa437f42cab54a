"""The query and path parameters of the OpenAPI document (/schema).

The routes read their parameters themselves, so that a bad one is a 400 naming it (ops/read_api.py)
and keys may hold encoded slashes (raw-path splitting). Litestar therefore cannot see them in the
handlers' signatures: they are described here, once, and written into the generated document, so
that clients and fuzzers (tests/integration/test_api_fuzz.py) know every parameter and its values.
"""
from __future__ import annotations

from typing import Any

from litestar.openapi.spec import OpenAPI, OpenAPIFormat, OpenAPIType, Parameter, Schema

from commands.instants import rfc3339
from commands.outcomes import REASONS
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
    ("/customers/{rest}", "get"): [AS_OF, LIMIT, CURSOR],
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


def document(openapi: OpenAPI) -> None:
    """Write the parameters above into Litestar's generated document (before it is first served)."""
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
