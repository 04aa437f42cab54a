"""The bodies the API answers with (SPEC §2, §7), as JSON Schema in the OpenAPI document.

The routes build their answers as plain objects (projections/reads.py, ops/api.py), so Litestar
cannot derive these: they are written here, once. tests/integration/test_openapi_answers.py checks
real answers against them, so the document cannot drift from what the engine sends.
"""
from __future__ import annotations

from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Reference, Schema

from commands.outcomes import REASONS
from projections.engagement import LADDER
from projections.vocabulary import LEVELS, PRIORITIES, STATES, TIERS, WITHHELD

_STRING = Schema(type=OpenAPIType.STRING)
_COUNT = Schema(type=OpenAPIType.INTEGER, minimum=0)
_INSTANT = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME, description="RFC 3339, UTC")
_HASH = Schema(type=OpenAPIType.STRING, pattern="^[0-9a-f]{64}$")
_RUNG = Schema(type=OpenAPIType.STRING, enum=list(LADDER))
_TIER = Schema(type=OpenAPIType.STRING, enum=[tier for tier in TIERS if tier != WITHHELD])
_JUDGED = Schema(type=OpenAPIType.STRING, enum=["met", "breached", "pending"])


def _nullable(schema: Schema) -> Schema:
    return Schema(one_of=[schema, Schema(type=OpenAPIType.NULL)])


def _object(properties: dict[str, Schema | Reference], *, optional: tuple[str, ...] = (), description: str | None = None
            ) -> Schema:
    """Every property required but the `optional` ones; no others (what clients may rely on)."""
    return Schema(type=OpenAPIType.OBJECT, properties=properties, description=description,
                  required=[name for name in properties if name not in optional], additional_properties=False)


def _counts(names: tuple[str, ...] | list[str]) -> Schema:
    """{name: n}: the names counted (a name with no count is left out)."""
    return Schema(type=OpenAPIType.OBJECT, property_names=Schema(type=OpenAPIType.STRING, enum=list(names)),
                  additional_properties=_COUNT)


def page(item: Schema) -> Schema:
    return _object({"items": Schema(type=OpenAPIType.ARRAY, items=item),
                    "next": _nullable(Schema(type=OpenAPIType.STRING, description="the cursor of the next page"))})


_WITHHELD = _object({"withheld": Schema(type=OpenAPIType.STRING, enum=["consent"])},
                    description="profiling consent withdrawn (SPEC §4)")
_IDENTITY = _object({"channel": _STRING, "handle": _STRING})
_IDENTITIES = Schema(type=OpenAPIType.ARRAY, items=_IDENTITY)
_CONSENT = _nullable(Schema(type=OpenAPIType.BOOLEAN))

CUSTOMER = _object({
    "customer": _STRING,
    "identities": _IDENTITIES,
    "engagement": Schema(one_of=[_object({"level": _RUNG, "observed": _RUNG, "stated": _nullable(_RUNG)}), _WITHHELD]),
    "advocacy": Schema(one_of=[_object({"score": Schema(type=OpenAPIType.NUMBER), "tier": _TIER}), _WITHHELD]),
    "cases": _object({"open": _COUNT, "total": _COUNT}),
    "last_seen": _nullable(_INSTANT),
    "consent": _object({"profiling": _CONSENT, "marketing": _CONSENT, "community_profile": _CONSENT},
                       description="each purpose's latest consent.changed as of T, null when never given"),
    "as_of": _INSTANT,
}, description="GET /customers/{key}")

EXPLAIN = _object({
    "customer": _STRING,
    "engagement": Schema(one_of=[_object({
        "as_of": _INSTANT,
        "window": _object({"after": _INSTANT, "until": _INSTANT}, description="(after, until]: the 90 days"),
        "events": Schema(type=OpenAPIType.ARRAY, items=_object({"id": _STRING, "occurred_at": _INSTANT,
                                                                 "rung": _RUNG})),
        "rungs": Schema(type=OpenAPIType.ARRAY, items=_object({
            "rung": _RUNG, "count": _COUNT, "threshold": _COUNT, "reached": Schema(type=OpenAPIType.BOOLEAN)})),
        "observed": _RUNG,
        "stated": _nullable(_object({"level": _nullable(_RUNG), "event": _STRING, "occurred_at": _INSTANT})),
    }), _WITHHELD]),
    "advocacy": Schema(one_of=[_object({
        "contributions": Schema(type=OpenAPIType.ARRAY, items=_object({
            "id": _STRING, "type": _STRING, "occurred_at": _INSTANT, "weight": Schema(type=OpenAPIType.NUMBER),
            "decayed": Schema(type=OpenAPIType.NUMBER)})),
        "total": Schema(type=OpenAPIType.NUMBER, description="unrounded: the tier is taken from it"),
        "score": Schema(type=OpenAPIType.NUMBER), "tier": _TIER,
    }), _WITHHELD]),
    "as_of": _INSTANT,
}, description="GET /customers/{key}/explain")

EVENT = Schema(type=OpenAPIType.OBJECT, description="an event of the log as normalised (SPEC §1); personal "
               "fields are named in `personal` and their values shown only to roles that may read them",
               required=["id", "type", "occurred_at", "source", "channel", "data", "personal", "position",
                         "recorded_at"],
               properties={"id": _STRING, "type": _STRING, "occurred_at": _INSTANT, "source": _STRING,
                           "channel": _STRING, "customer": _STRING, "identity": _IDENTITY,
                           "data": Schema(type=OpenAPIType.OBJECT),
                           "personal": Schema(type=OpenAPIType.ARRAY, items=_STRING),
                           "position": Schema(type=OpenAPIType.INTEGER, minimum=1), "recorded_at": _INSTANT},
               additional_properties=False)

CASE = _object({
    "customer": _nullable(_STRING), "case": _STRING, "state": Schema(type=OpenAPIType.STRING, enum=list(STATES)),
    "priority": Schema(type=OpenAPIType.STRING, enum=list(PRIORITIES)), "agent": _nullable(_STRING),
    "team": _nullable(_STRING), "opened_at": _INSTANT, "first_response_at": _nullable(_INSTANT),
    "first_response_minutes": _nullable(_COUNT), "solved_at": _nullable(_INSTANT),
    "resolution_minutes": _nullable(_COUNT), "reopen_count": _COUNT,
    "rating": _nullable(Schema(type=OpenAPIType.STRING, enum=["good", "bad"])),
    "escalated": Schema(type=OpenAPIType.BOOLEAN),
    "sla": _object({"first_response": _JUDGED, "resolution": _JUDGED}),
}, description="GET /cases/{case}")

STATS = _object({
    "events": _COUNT, "rejected": _counts(REASONS), "profiles": _COUNT,
    "engagement": _counts(list(LEVELS)), "advocacy": _counts(list(TIERS)), "cases": _counts(list(STATES)),
    "sla": _object({"first_response_breached": _COUNT, "resolution_breached": _COUNT}), "as_of": _INSTANT,
}, description="GET /stats")

REJECT = _object({"id": _nullable(_STRING), "reason": Schema(type=OpenAPIType.STRING, enum=list(REASONS)),
                  "detail": _STRING, "received_at": _INSTANT, "via": _STRING})

COMMUNITY = _object({
    "member": _STRING, "identities": _IDENTITIES, "level": _nullable(_RUNG),
    "contributions": _object({"posts": _COUNT, "answers": _COUNT, "accepted_answers": _COUNT, "ideas": _COUNT}),
    "as_of": _INSTANT,
})

HEALTH = _object({
    "status": Schema(type=OpenAPIType.STRING, enum=["ok", "degraded"]),
    "log": _object({"head": _COUNT, "head_hash": _HASH}),
    "projections": Schema(type=OpenAPIType.OBJECT, additional_properties=_object({
        "position": _COUNT, "folded": _COUNT, "lag": Schema(type=OpenAPIType.INTEGER), "error": _nullable(_STRING)},
        description="position: up to where the answers are whole, lag: the head minus it; folded: how far the fold "
        "has read the log, ahead of position only while a first fold of a long log is not swept yet")),
    "read_only": Schema(type=OpenAPIType.BOOLEAN),
    "ingest": _object({"error": _nullable(_STRING)}, description="why the last commit failed, or that the log "
                      "has not answered one for 10 s (then status is degraded); not on a read-only engine"),
    "nats": _object({"connected": Schema(type=OpenAPIType.BOOLEAN), "error": _nullable(_STRING)},
                    description="the JetStream consumer: not connected, delivery failing, or committed messages "
                    "it could not purge from the stream (then status is degraded); not on a read-only engine"),
}, optional=("ingest", "nats"))

VERIFIED = _object({"ok": Schema(type=OpenAPIType.BOOLEAN), "records": _COUNT, "head_hash": _HASH,
                    "broken": _nullable(_object({"position": Schema(type=OpenAPIType.INTEGER, minimum=1),
                                                 "problem": _STRING}))})

INGESTED = _object({
    "accepted": _COUNT, "duplicates": _COUNT,
    "rejected": Schema(type=OpenAPIType.ARRAY, items=_object({
        "index": _COUNT, "id": _nullable(_STRING), "reason": Schema(type=OpenAPIType.STRING, enum=list(REASONS)),
        "detail": _STRING})),
}, description="the count of each outcome, and every rejection with its place in the body (SPEC §2)")

# What each JSON route answers with 200.
ANSWERS: dict[tuple[str, str], Schema] = {
    ("/customers", "get"): page(CUSTOMER),
    ("/customers/{rest}", "get"): Schema(one_of=[CUSTOMER, EXPLAIN, page(EVENT)],
                                         description="the profile; …/explain; …/timeline (newest first)"),
    ("/cases", "get"): page(CASE),
    ("/cases/{rest}", "get"): CASE,
    ("/community/{rest}", "get"): COMMUNITY,
    ("/stats", "get"): STATS,
    ("/rejects", "get"): page(REJECT),
    ("/health", "get"): HEALTH,
    ("/audit/verify", "get"): VERIFIED,
    ("/events", "post"): INGESTED,
}
