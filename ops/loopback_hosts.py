"""Without --auth the engine listens on loopback only, and every route is open to whoever reaches
it. A web page the user opens can reach it too, by DNS rebinding: its own name resolved to
127.0.0.1, the browser sends the page's requests (a decrypted export, an erasure) with the page's
name in `Host`. So an engine without tokens answers only requests addressed to a loopback name.
"""
from __future__ import annotations

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(header: str) -> str:
    """`Host` without its port, and an IPv6 address without its brackets."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class LoopbackHostsOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), None)
            if host is not None and host_name(host).lower().rstrip(".") not in LOOPBACK_NAMES:
                body = msgspec.json.encode({"error": "bad_host", "detail": f"Host {host!r}: an engine without --auth "
                                            "answers requests to 127.0.0.1, localhost or [::1] only"})
                await send({"type": "http.response.start", "status": 421, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await self.app(scope, receive, send)
