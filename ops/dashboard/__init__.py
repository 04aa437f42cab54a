"""The dashboard page (`GET /`) and the assets it needs, all served by the engine itself.

The page is rendered on the server (Jinja2, autoescaped: keys and rejects' details are user data)
from the same answers as the JSON API, so its numbers are /stats' numbers. A little JavaScript
swaps in freshly rendered panels every few seconds and on an `as_of` change, and opens a profile
with its explanation and timeline. No build step, no CDN: it works offline.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import MediaType, Request, Response, get
from litestar.static_files import create_static_files_router

from engine.access import AUDIT
from engine.log import Log
from ops.access_http import role_of
from ops.dashboard.view import Rate, number, summary
from ops.read_api import BadParameter, only, parse_as_of, query
from projections.overview import ladder
from projections.reads import NotFound, Reads

STATIC = Path(__file__).parent / "static"
LATEST_REJECTS = 8
TIMELINE = 25

_templates = Environment(loader=PackageLoader("ops.dashboard", "templates"), autoescape=select_autoescape(["html"]),
                         trim_blocks=False, lstrip_blocks=False)
_templates.filters["number"] = number


# The page and its fragments show customer data: only the engine's own script and styles run
# (the bars' widths are inline style attributes), no other site may frame the page, and no cache
# keeps a copy (an agent's view holds personal fields).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _html(text: str, status: int = 200) -> Response[str]:
    return Response(text, status_code=status, media_type=MediaType.HTML, headers=SECURITY_HEADERS)


def dashboard_routes(log_: Log, reads: Reads | None, clock: Callable[[], datetime]) -> list[Any]:
    """Route handlers of the dashboard; none without read models."""
    if reads is None:
        return []
    rate = Rate()

    async def view(request: Request[Any, Any, Any], moment: datetime) -> dict[str, Any]:
        counted = await asyncio.to_thread(log_.reject_counts)
        role = role_of(request.scope)  # None: no --auth, the engine listens on loopback only
        rejects = (await asyncio.to_thread(log_.latest_rejects, LATEST_REJECTS)
                   if role is None or role in AUDIT else None)
        async with reads.snapshot():  # the panels add up: one state of the read models
            projected = await reads.position()
            stats = await reads.stats(moment, projected, counted)
            async with reads.connection() as db:
                rungs = await ladder(db, moment)
        head = log_.head.position  # after: the log is never behind its read models
        return summary(stats, rungs, rejects, head, projected, rate.observe(head))

    def moment_of(request: Request[Any, Any, Any], allowed: set[str]) -> tuple[datetime, bool]:
        params = query(request)
        only(params, allowed)
        return parse_as_of(params.get("as_of"), clock), "as_of" not in params

    @get("/", summary="The dashboard page", media_type=MediaType.HTML)
    async def page(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            moment, live = moment_of(request, {"as_of"})
        except BadParameter as e:
            return e.response()
        return _html(_templates.get_template("page.html").render(
            view=await view(request, moment), as_of=moment.isoformat().replace("+00:00", "Z"), live=live,
            as_of_input="" if live else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")))

    @get("/dashboard/panels", summary="The dashboard's panels as of an instant (HTML fragment)",
         media_type=MediaType.HTML)
    async def panels(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            moment, _ = moment_of(request, {"as_of"})
        except BadParameter as e:
            return e.response()
        return _html(_templates.get_template("panels.html").render(view=await view(request, moment)))

    @get("/dashboard/profile", summary="A profile with its explanation and timeline (HTML fragment)",
         media_type=MediaType.HTML)
    async def profile(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            moment, _ = moment_of(request, {"as_of", "key"})
            key = request.query_params.get("key", "").strip()
            if not key:
                raise BadParameter("key", "give a customer key, or ~channel:handle for an anonymous profile")
        except BadParameter as e:
            return e.response()
        template = _templates.get_template("profile.html")
        async with reads.snapshot():  # the profile, its explanation and its timeline of one instant
            customer = await reads.customer(key, moment)
            if isinstance(customer, NotFound):  # a view of "not found", for the page to show: not an API error
                return _html(template.render(key=key, missing=customer.body))
            explain = await reads.explain(key, moment)
            found = await reads.timeline(key, moment, before=None, limit=TIMELINE)
        timeline = [] if isinstance(found, NotFound) else found[0]
        return _html(template.render(key=key, missing=None, customer=customer, explain=explain, timeline=timeline))

    assets = create_static_files_router(path="/dashboard/static", directories=[STATIC], include_in_schema=False)
    return [page, panels, profile, assets]
