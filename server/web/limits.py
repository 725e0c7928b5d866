"""Request limits: the size of a request body, and how many runs a minute may create."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# /api/predict takes an image of up to 1 MB and enforces that itself (server/api/predict.py);
# /api/datasets a CSV of up to GRADSCOPE_MAX_DATASET_BYTES (server/web/api/datasets.py).
OWN_LIMIT_PATHS = ("/api/predict", "/api/datasets")
NO_BODY_METHODS = {"GET", "HEAD", "OPTIONS"}


class BodyLimitMiddleware:
    """413 for a request body over `max_bytes`, declared or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in NO_BODY_METHODS
            or scope["path"].startswith(OWN_LIMIT_PATHS)
        ):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send, int(declared))
            return
        # Read the whole body before the app sees any of it (it is small by definition), so
        # a chunked body over the limit is refused the same way as a declared one.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send, size, streamed=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # http.disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, size: int, streamed: bool = False) -> None:
        got = "" if streamed else f" ({size:,} bytes)"
        detail = (
            f"the request body is too large{got}: the limit is {self.max_bytes:,} bytes "
            "(GRADSCOPE_MAX_BODY_BYTES)"
        )
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is not read: this connection cannot carry another.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SlidingWindow:
    """At most `limit` events in any `window` seconds."""

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self.times: deque[float] = deque()

    def acquire(self) -> float | None:
        """Count one event now; if the window is full, count nothing and return the wait."""
        now = self.clock()
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return self.times[0] + self.window - now
        self.times.append(now)
        return None

    def release(self) -> None:
        """Take back the latest event (what it counted did not happen)."""
        if self.times:
            self.times.pop()


def retry_after(wait: float) -> str:
    """A Retry-After value: whole seconds, at least one."""
    return str(max(1, math.ceil(wait)))


def guarded_h11(header_timeout: float) -> type:
    """uvicorn's h11 protocol with a deadline for every request's headers.

    h11 already caps unfinished headers (uvicorn's h11_max_incomplete_event_size); without a
    deadline a client could still hold a connection (and its file descriptor) forever by
    sending nothing, or a byte a minute. A connection that starts no request within
    `header_timeout` seconds of opening (or of its last request's start) while none is in
    progress is closed.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            self._started = 0
            self._arm()

        def _arm(self) -> None:
            self._seen = self._started
            self._deadline = self.loop.call_later(header_timeout, self._expire)

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:
                self._started += 1

        def _expire(self) -> None:
            if self.transport.get_protocol() is not self:
                return  # upgraded to a websocket: no longer an HTTP connection of ours
            busy = self.cycle is not None and not self.cycle.response_complete
            if self._started == self._seen and not busy and not self.transport.is_closing():
                self.transport.close()  # no request began in time
            elif not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc):  # type: ignore[no-untyped-def]
            self._deadline.cancel()
            super().connection_lost(exc)

    return GuardedH11Protocol
