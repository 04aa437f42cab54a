"""The HTTP side of roles (engine/access.py): who may call which route.

A token comes as `Authorization: Bearer TOKEN`, or as the password of HTTP Basic (any user name),
which is what a browser asks for when it opens the dashboard: no login page, no cookie. Routes
are matched by template, after routing, so an unknown path is a 404 for everyone.
"""
from __future__ import annotations

import base64
import binascii

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from engine.access import AUDIT, PUBLISH, READ, Access, Role

ROLE_KEY = "engage.role"  # where the caller's role is left in the ASGI scope
# One header line per scheme: a browser reads only the first challenge of a line, and Chromium
# offered no login for `Bearer …, Basic …` on one line (Basic is what makes it ask).
CHALLENGES = (b'Basic realm="engage"', b'Bearer realm="engage"')


def required(method: str, template: str) -> frozenset[Role] | None:
    """The roles that may call a route; None: anyone, without a token."""
    if template == "/health" or template.startswith("/schema"):
        return None  # liveness probes; the OpenAPI document describes, it reveals no data
    if template == "/events":
        return PUBLISH
    if template == "/rejects" or template.startswith("/audit"):
        return AUDIT
    return READ  # the dashboard, the read API, /community, /metrics


def role_of(scope: Scope) -> Role | None:
    """The caller's role, when the engine runs with --auth and the caller gave a token."""
    role: Role | None = scope.get(ROLE_KEY)  # type: ignore[assignment]
    return role


def presented(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip() or None
        if scheme.lower() == "basic":
            try:
                _, _, password = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return password or None
    return None


class AccessGuard(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, access: Access) -> None:
        self.access = access

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        allowed = required(str(scope.get("method", "GET")), str(scope.get("path_template", "")))
        token = presented(list(scope.get("headers", [])))
        holder = None if token is None else self.access.holder(token)
        if holder is not None:
            scope[ROLE_KEY] = holder.role  # type: ignore[literal-required]
        if allowed is None or (holder is not None and holder.role in allowed):
            await next_app(scope, receive, send)
            return
        if holder is None:
            detail = "no token" if token is None else "this token is not known"
            await _refuse(send, 401, "unauthorized", f"{detail}: send Authorization: Bearer TOKEN")
        else:
            await _refuse(send, 403, "forbidden", f"the role {holder.role} may not call this: ask for a "
                          f"token of one of {', '.join(sorted(allowed))}")


async def _refuse(send: Send, status: int, error: str, detail: str) -> None:
    body = msgspec.json.encode({"error": error, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers += [(b"www-authenticate", challenge) for challenge in CHALLENGES]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
