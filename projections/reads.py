"""Answers of the read API (SPEC §7) from the read models, for any as_of instant.

A profile's own answer folds its events exactly (engagement.py, advocacy.py) with indexed reads of
that profile only; statistics count the spans that contain T. Nothing refolds the log per request.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite
import msgspec

from commands.cases import ACTIVE, Case
from commands.instants import rfc3339
from commands.touchpoints import PERSONAL_FIELDS
from engine.log import EVENTS_TABLE, on_read_only_media, read_only_uri
from projections.advocacy import advocacy, explain_advocacy
from projections.counts import counts_at
from projections.engagement import LADDER, WINDOW, Engagement, consent_granted, engagement, explain_engagement
from projections.sla import case_view
from projections.store import ANSWERED, END, instant, sortable

_case_decoder = msgspec.msgpack.Decoder(Case)

# The instants a read can be asked about: from the first whose 90-day window starts within the
# calendar (0001-04-01) to the last before END, where every span ends.
EARLIEST_AS_OF = datetime.min.replace(tzinfo=UTC) + WINDOW
LATEST_AS_OF = instant(END) - timedelta(microseconds=1)


class NotFound(msgspec.Struct, frozen=True):
    body: dict[str, Any]  # {"error": "not_found" | "erased" | "linked", ...}


# The connection, in a read transaction, of the task's current `Reads.snapshot()`.
_pinned: contextvars.ContextVar[aiosqlite.Connection | None] = contextvars.ContextVar("snapshot", default=None)

# Readers' connections (a thread each, with SQLite's 2 MiB page cache): concurrent reads run side by
# side instead of one after the other on a single connection.
CONNECTIONS = 4
# Connections kept for the answers about one thing (a profile, a case, /stats): behind 4 clients
# listing 1,000 profiles each, /stats waited for a free connection, 430 ms p50 and 1.5 s at worst
# (found by a probe); lists and long reads use the others.
QUICK_CONNECTIONS = 2


P = ParamSpec("P")
R = TypeVar("R")


def _consistent(method: Callable[Concatenate[Reads, P], Coroutine[Any, Any, R]]
                ) -> Callable[Concatenate[Reads, P], Coroutine[Any, Any, R]]:
    """An answer of the read API, read in one snapshot (Reads.snapshot)."""

    @functools.wraps(method)
    async def read(self: Reads, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with self.snapshot():
            return await method(self, *args, **kwargs)

    return read


def _quick(method: Callable[Concatenate[Reads, P], Coroutine[Any, Any, R]]
           ) -> Callable[Concatenate[Reads, P], Coroutine[Any, Any, R]]:
    """_consistent, on a connection kept for answers about one thing (QUICK_CONNECTIONS)."""

    @functools.wraps(method)
    async def read(self: Reads, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with self.snapshot(quick=True):
            return await method(self, *args, **kwargs)

    return read


class Reads:
    """`path`: the read models; `log_path`: the log they are folded from, where timelines read
    the records themselves."""

    def __init__(self, path: Path, log_path: Path, *, connections: int = CONNECTIONS,
                 quick_connections: int = QUICK_CONNECTIONS) -> None:
        self.path = path
        self.log_path = log_path
        self._size = connections
        self._quick_size = quick_connections
        self._open: list[aiosqlite.Connection] = []
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._quick: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()

    async def open(self) -> None:
        """Open for reading; the tables must exist (the runtime creates them before the runner starts)."""
        # A snapshot on read-only media (an auditor's archive) is opened immutable: WAL readers
        # need a shared-memory file they cannot make there (engine/log.py, on_read_only_media).
        archived = on_read_only_media(self.path)
        path, log_path = (read_only_uri(self.path), read_only_uri(self.log_path)) if archived else (
            str(self.path), str(self.log_path))
        for n in range(self._size + self._quick_size):
            db = await aiosqlite.connect(path, uri=archived, timeout=30)
            self._open.append(db)
            await db.execute("PRAGMA query_only=ON")
            await db.execute("ATTACH DATABASE ? AS log", (log_path,))
            (self._idle if n < self._size else self._quick).put_nowait(db)

    async def close(self) -> None:
        for db in self._open:
            await db.close()
        self._open.clear()

    @contextlib.asynccontextmanager
    async def connection(self, *, quick: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """A connection of the pool for one read: a slow one (a list over millions of profiles)
        holds only its own, not every other reader's. Inside `snapshot()`, that one's connection.
        `quick`: one of those kept for answers about one thing."""
        pinned = _pinned.get()
        if pinned is not None:
            yield pinned
            return
        assert self._open, "Reads.open() first"
        pool = self._quick if quick and self._quick_size else self._idle
        db = await pool.get()
        try:
            yield db
        finally:
            pool.put_nowait(db)

    @contextlib.asynccontextmanager
    async def snapshot(self, *, quick: bool = False) -> AsyncIterator[None]:
        """Every read of this task inside it sees the read models at one instant: one connection,
        one read transaction. An answer made of several queries (a list's keys, then its items;
        /stats' counts) would otherwise mix states while the runner commits between them: a
        ?level= page listing a profile of another level, /stats' levels not adding up to its
        profiles. Nested, it is the outer one."""
        if _pinned.get() is not None:
            yield
            return
        async with self.connection(quick=quick) as db:
            await db.execute("BEGIN")  # deferred: the snapshot is taken by the first read
            token = _pinned.set(db)
            try:
                yield
            finally:
                _pinned.reset(token)
                await db.execute("COMMIT")  # only reads: nothing to keep, the snapshot ends

    async def _all(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        async with self.connection() as db, db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        async with self.connection() as db, db.execute(sql, params) as cur:
            return await cur.fetchone()

    async def position(self) -> int:
        """Up to where the answers are whole (store.ANSWERED): 0 while a bulk fold is not swept."""
        async with self.connection(quick=True) as db, db.execute(ANSWERED) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # --- profiles --------------------------------------------------------------------------------

    async def _histories(self, keys: list[str], as_of: datetime, *, counted: bool = False) -> dict[str, list[Any]]:
        """Each profile's events up to as_of, sorted by (occurred_at, id): (occurred_at, id, type,
        rung, weight, detail), in one query for all of them. `counted`: only those that carry an
        advocacy weight or a consent (what a profile's answer folds when its spans say the rest)."""
        histories: dict[str, list[Any]] = {key: [] for key in keys}
        if not keys:
            return histories
        only = " AND (e.weight IS NOT NULL OR e.type = 'consent.changed')" if counted else ""
        for owner, *row in await self._all(
                "SELECT o.owner, e.occurred_at, e.id, e.type, e.rung, e.weight, e.detail FROM origins o "
                f"JOIN events e ON e.oid = o.oid WHERE o.owner IN ({','.join('?' * len(keys))}) "
                f"AND e.occurred_at <= ?{only} ORDER BY o.owner, e.occurred_at, e.id", [*keys, sortable(as_of)]):
            histories[owner].append(row)
        return histories

    async def _history(self, key: str, as_of: datetime) -> list[Any]:
        return (await self._histories([key], as_of))[key]

    @_quick
    async def customer(self, key: str, as_of: datetime) -> dict[str, Any] | NotFound:
        answer = (await self._profiles([key], as_of)).get(key)
        return await self._absent(key) if answer is None else answer

    async def _profiles(self, keys: list[str], as_of: datetime) -> dict[str, dict[str, Any]]:
        """The answers of GET /customers/{key} for those of `keys` that are profiles, in four
        queries for all of them (a list of 100 made 500 queries, one profile after the other).

        Engagement at T is the profile's span that holds T and `last_seen` one indexed look-up,
        so only the events that count for advocacy and consent are read and folded: a profile of
        25,000 events took ~100 ms, refolding its whole history on every request. A profile
        without spans (a bulk fold not swept yet) is folded from its whole history, as before."""
        t = sortable(as_of)
        spans: dict[str, Engagement] = {}
        seen: dict[str, str | None] = {}
        present: set[str] = set()
        for key, level, observed, stated, last in await self._all(
                ENGAGEMENT_AT.format(marks=",".join("?" * len(keys))), [t, t, t, *keys]):
            present.add(key)
            if level is not None:
                spans[key], seen[key] = Engagement(level, observed, stated), last
        keys = [key for key in keys if key in present]
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        histories = await self._histories([key for key in keys if key not in spans], as_of)
        histories |= await self._histories([key for key in keys if key in spans], as_of, counted=True)
        identities: dict[str, set[tuple[str, str]]] = {key: set() for key in keys}
        for owner, channel, handle in await self._all(
                f"SELECT owner, channel, handle FROM origins WHERE owner IN ({marks}) AND channel IS NOT NULL", keys):
            identities[owner].add((channel, handle))
        cases: dict[str, list[str]] = {key: [] for key in keys}
        for owner, state in await self._all(CASE_STATES_OF.format(marks=marks), keys):
            cases[owner].append(state)
        return await asyncio.to_thread(lambda: {  # folds of up to 1,000 profiles: off the event loop
            key: _profile(key, histories[key], sorted(identities[key]), cases[key], as_of,
                          spans.get(key), seen.get(key)) for key in keys})

    @_consistent
    async def customers(self, as_of: datetime, *, level: str | None, tier: str | None, after: str,
                        limit: int, marketing: bool | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """The profiles ordered by key, filtered by level and tier as of T (their spans), and by
        marketing consent (True: granted as of T; False: withdrawn or never granted)."""
        t = sortable(as_of)
        sql, params = "SELECT p.key FROM profiles p", []
        if level is not None:
            sql += (" JOIN engagement_spans e ON e.profile = p.key AND e.end > ? AND e.start <= ? AND e.level = ?")
            params += [t, t, level]
        if tier is not None:
            sql += (" JOIN advocacy_spans a ON a.profile = p.key AND a.end > ? AND a.start <= ? AND a.tier = ?")
            params += [t, t, tier]
        sql += " WHERE p.key > ?"
        params.append(after)
        if marketing is not None:
            sql += f" AND ({LATEST_CONSENT}) {'=' if marketing else 'IS NOT'} 'marketing:granted'"
            params += ["marketing:%", t]
        sql += " ORDER BY p.key LIMIT ?"
        try:
            rows = await self._all(sql, [*params, limit + 1])
        except sqlite3.OperationalError as e:
            if CONSENT_INDEX not in str(e):
                raise
            # A bulk fold builds its indexes at the end (projections/store.py): until then, without.
            rows = await self._all(sql.replace(f" INDEXED BY {CONSENT_INDEX}", ""), [*params, limit + 1])
        keys = [row[0] for row in rows]
        answers = await self._profiles(keys[:limit], as_of) if keys else {}
        return [answers[key] for key in keys[:limit]], (keys[limit - 1] if len(keys) > limit else None)

    @_consistent
    async def explain(self, key: str, as_of: datetime) -> dict[str, Any] | NotFound:
        """Every contribution to the advocacy score and the engagement counts behind `observed`,
        each naming its event id (SPEC §7); withheld as a whole without profiling consent."""
        if await self._one("SELECT 1 FROM profiles WHERE key=?", (key,)) is None:
            return await self._absent(key)
        rows = await self._history(key, as_of)
        # A profile of 200,000 events takes a second to explain: off the event loop, which other
        # requests (and ingest's answers) need meanwhile.
        return await asyncio.to_thread(_explanation, key, rows, as_of)

    @_consistent
    async def timeline(self, key: str, as_of: datetime, *, before: tuple[str, str] | None, limit: int,
                       reveal: Callable[[str], str | None] | None = None,
                       ) -> tuple[list[dict[str, Any]], tuple[str, str] | None] | NotFound:
        """The profile's events up to as_of, newest first. Personal fields are listed by name under
        `personal`; their values are in `data` only with `reveal` (for roles allowed to read them:
        it decrypts a stored value, None once its key is destroyed)."""
        if await self._one("SELECT 1 FROM profiles WHERE key=?", (key,)) is None:
            return await self._absent(key)
        oids = [row[0] for row in await self._all("SELECT oid FROM origins WHERE owner=?", (key,))]
        marks = ",".join("?" * len(oids))
        sql = (f"SELECT e.occurred_at, e.id, l.state FROM events e JOIN log.{EVENTS_TABLE} l ON l.rowid = e.position "
               f"WHERE e.oid IN ({marks}) AND e.occurred_at <= ?")
        params: list[Any] = [*oids, sortable(as_of)]
        if before is not None:
            sql += " AND (e.occurred_at, e.id) < (?, ?)"
            params += list(before)
        rows = await self._all(sql + " ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?", [*params, limit + 1])
        items = [_timeline_item(row[2], reveal) for row in rows[:limit]]
        return items, ((rows[limit - 1][0], rows[limit - 1][1]) if len(rows) > limit else None)

    @_consistent
    async def cases(self, as_of: datetime, *, filters: dict[str, str], breached: bool | None, after: str,
                    limit: int) -> tuple[list[dict[str, Any]], str | None]:
        sql, params = "SELECT case_id FROM cases WHERE case_id > ?", [after]
        for column in ("state", "priority", "agent", "team"):
            if column in filters:
                sql += f" AND {column} = ?"
                params.append(filters[column])
        if breached is not None:
            t = sortable(as_of)
            condition = "(first_response_breached_from <= ? OR resolution_breached_from <= ?)"
            sql += f" AND {condition}" if breached else f" AND NOT coalesce({condition}, 0)"
            params += [t, t]
        ids = [row[0] for row in await self._all(sql + " ORDER BY case_id LIMIT ?", [*params, limit + 1])]
        answers = await self._cases(ids[:limit], as_of) if ids else {}
        items = [answers[case] for case in ids[:limit] if case in answers]
        return items, (ids[limit - 1] if len(ids) > limit else None)

    @_consistent
    async def community(self, key: str, as_of: datetime) -> dict[str, Any] | None:
        """The public view of a member that other members see, only while the member's latest
        `community_profile` consent grants it; None otherwise, as for an unknown key: nothing is
        revealed. Public identities, engagement level and counts of public contributions; never
        advocacy, cases or personal fields."""
        if await self._one("SELECT 1 FROM profiles WHERE key=?", (key,)) is None:
            return None
        rows = await self._history(key, as_of)
        consent = _consents(rows, as_of)
        if consent["community_profile"] is not True:
            return None
        identities = await self._all(
            "SELECT DISTINCT channel, handle FROM origins WHERE owner=? AND channel IS NOT NULL "
            "ORDER BY channel, handle", (key,))
        level = None
        if consent["profiling"] is not False:  # without profiling consent nothing is inferred
            rungs = [(instant(r[0]), LADDER[r[3]]) for r in rows if r[3] is not None]
            statements = [(instant(r[0]), r[1], r[5] or None) for r in rows if r[2] == "preferences.stated"]
            level = engagement(rungs, statements, as_of).level
        counted = {kind: sum(1 for r in rows if r[2] == kind) for kind in PUBLIC_CONTRIBUTIONS}
        return {
            "member": key,
            "identities": [{"channel": ch, "handle": h} for ch, h in identities],
            "level": level,
            "contributions": {name: counted[kind] for kind, name in PUBLIC_CONTRIBUTIONS.items()},
            "as_of": rfc3339(as_of),
        }

    async def _absent(self, key: str) -> NotFound:
        if await self._one("SELECT 1 FROM erased WHERE customer=?", (key,)) is not None:
            return NotFound({"error": "erased"})
        if key.startswith("~"):
            channel, _, handle = key[1:].partition(":")
            row = await self._one("SELECT owner FROM origins WHERE channel=? AND handle=? ORDER BY epoch DESC LIMIT 1",
                                  (channel, handle))
            if row is not None and row[0] is not None and not row[0].startswith("~"):
                return NotFound({"error": "linked", "customer": row[0]})
        return NotFound({"error": "not_found"})

    # --- cases -----------------------------------------------------------------------------------

    @_quick
    async def case(self, case: str, as_of: datetime) -> dict[str, Any] | None:
        return (await self._cases([case], as_of)).get(case)

    async def _cases(self, cases: list[str], as_of: datetime) -> dict[str, dict[str, Any]]:
        """GET /cases/{case} of the existing ones among `cases`, in one query."""
        rows = await self._all("SELECT c.case_id, c.body, o.owner FROM cases c JOIN origins o ON o.oid = c.oid "
                               f"WHERE c.case_id IN ({','.join('?' * len(cases))})", cases)
        return {case: {"customer": owner, **case_view(_case_decoder.decode(body), as_of)} for case, body, owner in rows}

    # --- statistics ------------------------------------------------------------------------------

    @_quick
    async def stats(self, as_of: datetime, events: int, rejected: dict[str, int]) -> dict[str, Any]:
        t = sortable(as_of)
        async with self.connection() as db:
            counted = await counts_at(db, as_of)
        states = await self._all(CASES_BY_STATE)
        (first_response,) = await self._one(FIRST_RESPONSE_BREACHED, (t,))
        (resolution,) = await self._one(RESOLUTION_BREACHED, (t,))
        (profiles,) = await self._one("SELECT COUNT(*) FROM profiles")
        return {
            "events": events,
            "rejected": rejected,
            "profiles": profiles,
            "engagement": counted["level"],
            "advocacy": counted["tier"],
            "cases": {state: n for state, n in states},
            "sla": {"first_response_breached": first_response, "resolution_breached": resolution},
            "as_of": rfc3339(as_of),
        }





_record = msgspec.json.Decoder(dict[str, Any])

# Reads of the cases table that every GET /customers/{key} and /stats makes: each goes through an
# index of store.SCHEMA (tests/integration/test_read_plans.py), so they cost the same however
# many cases the log has.
# A profile's engagement at T (its span holding T) and its latest instant with a rung up to T,
# for profiles listed by key: each reads an index (engagement_spans' key, events_by_origin).
# (One query: each costs a round trip to the connection's thread, ~0.3 ms, on every GET.)
ENGAGEMENT_AT = (
    "SELECT p.key, s.level, s.observed, s.stated, (SELECT max(e.occurred_at) FROM origins o JOIN events e "
    "ON e.oid = o.oid WHERE o.owner = p.key AND e.rung IS NOT NULL AND e.occurred_at <= ?) "
    "FROM profiles p LEFT JOIN engagement_spans s ON s.profile = p.key AND s.start <= ? AND s.end > ? "
    "WHERE p.key IN ({marks})")
CASE_STATES_OF = "SELECT o.owner, c.state FROM origins o JOIN cases c ON c.oid = o.oid WHERE o.owner IN ({marks})"
CASES_BY_STATE = "SELECT state, COUNT(*) FROM cases GROUP BY state"
FIRST_RESPONSE_BREACHED = "SELECT COUNT(*) FROM cases WHERE first_response_breached_from <= ?"
RESOLUTION_BREACHED = "SELECT COUNT(*) FROM cases WHERE resolution_breached_from <= ?"

PURPOSES = ("profiling", "marketing", "community_profile")
# What other members may count of a member's public activity (issue 6: translucence).
PUBLIC_CONTRIBUTIONS = {"post.published": "posts", "answer.posted": "answers",
                        "answer.accepted": "accepted_answers", "idea.submitted": "ideas"}
# The `detail` of a profile's latest consent.changed for a purpose (LIKE ?) as of T (?). The planner
# would take the covering events_by_origin and read all of the profile's events up to T; the partial
# index holds only the consents (the key query of /customers?marketing=granted at 980k events: 8 ms
# instead of 31).
CONSENT_INDEX = "events_consent"
LATEST_CONSENT = (f"SELECT e.detail FROM origins o JOIN events e INDEXED BY {CONSENT_INDEX} ON e.oid = o.oid "
                  "WHERE o.owner = p.key AND e.type = 'consent.changed' AND e.detail LIKE ? AND e.occurred_at <= ? "
                  "ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1")


def _explanation(key: str, rows: list[Any], as_of: datetime) -> dict[str, Any]:
    """GET /customers/{key}/explain from the profile's events up to T, as _profile takes them."""
    consents = [(instant(r[0]), r[1], r[5].endswith(":granted")) for r in rows
                if r[2] == "consent.changed" and r[5].startswith("profiling:")]
    if consent_granted(consents, as_of) is False:
        return {"customer": key, "engagement": {"withheld": "consent"}, "advocacy": {"withheld": "consent"},
                "as_of": rfc3339(as_of)}
    rungs = [(instant(r[0]), r[1], LADDER[r[3]]) for r in rows if r[3] is not None]
    statements = [(instant(r[0]), r[1], r[5] or None) for r in rows if r[2] == "preferences.stated"]
    *contributions, total = explain_advocacy(
        [(instant(r[0]), r[1], r[2], r[4]) for r in rows if r[4] is not None], as_of)
    latest = max(statements, default=None, key=lambda s: (s[0], s[1]))
    return {
        "customer": key,
        "engagement": {**explain_engagement(rungs, as_of),
                       "stated": None if latest is None else {"level": latest[2], "event": latest[1],
                                                              "occurred_at": rfc3339(latest[0])}},
        "advocacy": {"contributions": contributions, **total},
        "as_of": rfc3339(as_of),
    }


def _profile(key: str, rows: list[Any], identities: list[tuple[str, str]], case_states: list[str],
             as_of: datetime, span: Engagement | None = None, last_seen: str | None = None) -> dict[str, Any]:
    """GET /customers/{key} from the profile's events up to T, (occurred_at, id, type, rung, weight,
    detail) sorted by (occurred_at, id), its identities sorted, and its cases' states. With `span`
    (its engagement at T, from its spans) and `last_seen` (stored form), `rows` need only hold the
    events with an advocacy weight or a consent; without, every event up to T."""
    if span is None:
        rungs = [(instant(r[0]), LADDER[r[3]]) for r in rows if r[3] is not None]
        statements = [(instant(r[0]), r[1], r[5] or None) for r in rows if r[2] == "preferences.stated"]
        span = engagement(rungs, statements, as_of)
        last_seen = rfc3339(rungs[-1][0]) if rungs else None
    elif last_seen is not None:
        last_seen = rfc3339(instant(last_seen))
    consent = _consents(rows, as_of)
    contributions = [(instant(r[0]), r[4]) for r in rows if r[4] is not None]
    withheld = consent["profiling"] is False
    return {
        "customer": key,
        "identities": [{"channel": ch, "handle": h} for ch, h in identities],
        "engagement": {"withheld": "consent"} if withheld else msgspec.to_builtins(span),
        "advocacy": {"withheld": "consent"} if withheld else msgspec.to_builtins(
            advocacy(contributions, as_of)),
        "cases": {"open": sum(1 for state in case_states if state in ACTIVE), "total": len(case_states)},
        "last_seen": last_seen,
        # Each purpose's latest consent.changed as of T: true, false, or null when never stated.
        "consent": consent,
        "as_of": rfc3339(as_of),
    }


def _consents(rows: list[Any], as_of: datetime) -> dict[str, bool | None]:
    """Each purpose's latest consent as of T, from a profile's (occurred_at, id, type, rung, weight,
    detail) rows: True, False, or None when never stated."""
    answer: dict[str, bool | None] = {}
    for purpose in PURPOSES:
        changes = [(instant(r[0]), r[1], r[5].endswith(":granted")) for r in rows
                   if r[2] == "consent.changed" and r[5].startswith(f"{purpose}:")]
        answer[purpose] = consent_granted(changes, as_of)
    return answer


def _timeline_item(line: bytes, reveal: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    record = _record.decode(line)
    event = record["event"]
    data = dict(event.get("data") or {})
    personal = sorted(name for name in PERSONAL_FIELDS if name in data)
    for name in personal:
        if reveal is None:
            del data[name]
        else:
            data[name] = reveal(data[name])
    item = {k: v for k, v in event.items() if k != "data"}
    return {**item, "data": data, "personal": personal, "position": record["position"],
            "recorded_at": record["recorded_at"]}
