"""HEAD answers as GET does, without the body (RFC 9110 §9.3.2).

Monitors and `curl -I` probe with HEAD; Litestar routes it only to handlers written for it, so every
GET route would answer 405. This wrapper sits in front of the app: the app sees a GET, and what it
sends back keeps its status and headers (content-length included, as the standard asks) and loses
its body.
"""
from __future__ import annotations

from typing import cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # a streamed body's parts go nowhere; the last one ends the answer
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(cast(HTTPScope, {**scope, "method": "GET"}), receive, without_body)
