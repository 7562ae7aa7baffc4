"""Pure ASGI middleware at the edge: HEAD as GET, the body size limit, and a 500 with an id.

The size limit is enforced while the body streams in: a declared Content-Length over the limit
is refused before the app reads a byte, and a chunked body is counted chunk by chunk and cut off
at the limit, so an oversize upload never sits whole in memory. The rest of the body is then
read and thrown away (up to ``drain_bytes``) before the 413 goes out: a client still sending
would otherwise see its connection reset instead of the answer.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("realfake.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class WatchedSend:
    """``send`` that remembers the status of the response it started (None: not started yet)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None

    @property
    def started(self) -> bool:
        return self.status is not None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class HeadAsGet:
    """HEAD is answered as GET without the body (RFC 9110 §9.3.2): FastAPI's routes know GET only.

    The headers, Content-Length included, are GET's; a method GET does not allow stays 405.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headless(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headless)


class BodyTooLarge(Exception):
    """Raised inside ``receive`` once a streamed body passes the limit."""


async def send_json(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    """A complete JSON response."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """413 for a request body over ``max_bytes``, declared or streamed."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        on_refused: Callable[[str], None],
        drain_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused  # called with the path (metrics)
        self.drain_bytes = drain_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, more: bool) -> None:
        """Read and discard what is left of the body (bounded), then answer 413."""
        self.on_refused(scope["path"])
        drained = 0
        while more and drained <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send_json(send, 413, self._detail(), close=more)

    def _detail(self) -> dict[str, Any]:
        return {"detail": f"request body over the limit of {self.max_bytes:,} bytes"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await send_json(send, 400, {"detail": "Content-Length is not a number"}, True)
                return
            if too_big:
                await self._refuse(scope, receive, send, more=True)
                return
        seen = 0
        more = True

        async def counted_receive() -> Message:
            nonlocal seen, more
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                more = message.get("more_body", False)
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        watched = WatchedSend(send)
        try:
            await self.app(scope, counted_receive, watched)
        except BodyTooLarge:
            if not watched.started:
                await self._refuse(scope, receive, send, more)


class ErrorIds:
    """An unexpected exception becomes a 500 with an id; the log has the id and the traceback."""

    def __init__(self, app: ASGIApp, on_error: Callable[[str], None]) -> None:
        self.app = app
        self.on_error = on_error  # called with the path (metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("error %s on %s %s", error_id, scope.get("method"), scope.get("path"))
            self.on_error(scope["path"])
            if not watched.started:
                body = {
                    "detail": "internal error; the server log has the details",
                    "error_id": error_id,
                }
                await send_json(send, 500, body)
