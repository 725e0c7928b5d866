"""Network safety: a Host allow-list, Origin checks, the access token and security headers.

One pure ASGI middleware covers http and websocket scopes alike (docs/security.md):
- Host: localhost, IP addresses, the bind host and GRADSCOPE_ALLOWED_HOSTS, so a page on
  another name cannot reach the server through DNS rebinding (403).
- Origin: a websocket, or a request that changes something, from a page on another origin
  is refused (403) unless that origin is in GRADSCOPE_CORS_ORIGINS.
- Token: required when the server binds a non-loopback address (or one is set). A bearer
  header, the cookie that the first `?token=` visit sets, or `?token=` itself (401 without).
  /static/ stays open: its files are the same for everyone.
- Headers: nosniff, no referrer, no framing on every response; a Content-Security-Policy
  that allows only our own scripts on the pages.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import re
import secrets
import socket
import time
from collections import OrderedDict
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gradscope.server.settings import Settings

WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
OPEN_PREFIX = "/static/"
# /docs (Swagger UI, vendored; web/docs.py) starts with an inline script: our policy would
# blank it, so it keeps only the other headers.
NO_CSP_PREFIXES = ("/docs",)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name only reaches this machine."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def token_required(settings: Settings) -> bool:
    """A token guards every non-loopback bind, and any server given one explicitly."""
    return bool(settings.token) or not is_loopback(settings.host)


def with_token(settings: Settings) -> Settings:
    """The settings, with a freshly generated token where one is required but not given."""
    if token_required(settings) and not settings.token:
        return settings.replace(token=secrets.token_urlsafe(32))
    return settings


def start_urls(settings: Settings) -> list[str]:
    """The URLs `gradscope serve` prints: with the token when one is required."""
    query = f"?token={settings.token}" if token_required(settings) else ""
    port = settings.port
    if settings.host in WILDCARD_HOSTS:
        names = ["127.0.0.1", socket.gethostname()]
    else:
        names = [f"[{settings.host}]" if ":" in settings.host else settings.host]
    return [f"http://{name}:{port}/{query}" for name in names]


def content_security_policy(host: str) -> str:
    """Only our own scripts, no inline script; websockets only back to this host."""
    # viz.js compiles Graphviz from WebAssembly bytes ('wasm-unsafe-eval'); style attributes
    # (uPlot, the panels, viz.js's SVG) need 'unsafe-inline' styles. Naming ws://host and
    # wss://host besides 'self' keeps browsers that do not match ws: against 'self' working.
    # CSP has no syntax for an IPv6 literal: there 'self' alone has to do.
    sockets = "" if host.startswith("[") else f" ws://{host} wss://{host}"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            f"connect-src 'self'{sockets}",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        )
    )


def host_name(value: str) -> str | None:
    """The name in a Host header, lower case, without port or IPv6 brackets; None if bad."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        name = value[1:end]
        return name if re.fullmatch(r"[0-9a-f:.]+", name) else None
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return name.rstrip(".") if re.fullmatch(r"[a-z0-9_.-]+", name) else None


class HostAllowList:
    """The host names this server answers to."""

    def __init__(self, settings: Settings) -> None:
        extra = {h.strip().lower().strip("[]") for h in settings.allowed_hosts}
        self.any = "*" in extra
        self.names = {"localhost", "127.0.0.1", "::1", *extra}
        bind = settings.host.strip("[]").lower()
        if bind in WILDCARD_HOSTS:
            # Every address of the machine: its own names are what other machines use.
            self.names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        else:
            self.names.add(bind)

    def allows(self, header: str) -> bool:
        """Whether a request with this Host header may be served."""
        name = host_name(header)
        if name is None:
            return False
        if self.any or name in self.names:
            return True
        # DNS rebinding needs a name the attacker controls; an address literal is no such name.
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


class SecurityMiddleware:
    """Refuses what the network should not reach; adds the security headers."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostAllowList(settings)
        self.origins = {o.rstrip("/").lower() for o in settings.cors_origins}
        self.token = settings.token.encode() if token_required(settings) else None
        # Cookies do not tell ports apart: each server's cookie carries its port.
        self.cookie = f"gradscope_token_{settings.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        path: str = scope.get("path", "")
        if scope["type"] == "http":
            send = self._with_headers(send, host, path)
        if sum(name == b"host" for name, _ in scope.get("headers", ())) > 1:
            # Two Host headers: the allow-list would judge one while a proxy used the other.
            await _deny(scope, receive, send, 400, "a request must carry one Host header")
            return
        if not self.hosts.allows(host):
            await _deny(
                scope,
                receive,
                send,
                403,
                f"this server does not answer to the host name {host!r}; to allow it, add it "
                "to GRADSCOPE_ALLOWED_HOSTS (this refusal protects against DNS rebinding)",
            )
            return
        origin = headers.get("origin")
        if not self._origin_ok(scope, headers, origin, host):
            await _deny(
                scope,
                receive,
                send,
                403,
                f"cross-origin request refused: {origin or 'another site'} is not this "
                "server's origin; to allow it, add it to GRADSCOPE_CORS_ORIGINS",
            )
            return
        if self.token is not None and not path.startswith(OPEN_PREFIX):
            sources = self._authorized(scope, headers)
            if not sources:
                await _deny(
                    scope,
                    receive,
                    send,
                    401,
                    "a token is needed: open the URL with ?token=... that the server printed "
                    "at start (scripts: send the header 'Authorization: Bearer <token>')",
                )
                return
            if "query" in sources and _is_page_visit(scope):
                await self._set_cookie_and_redirect(scope, send)
                return
        await self.app(scope, receive, send)

    def _with_headers(self, send: Send, host: str, path: str) -> Send:
        # The Host names the websocket endpoint; an unusable one (refused anyway) names none.
        csp = content_security_policy(host.lower() if host_name(host) else "localhost")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                out = MutableHeaders(scope=message)
                for name, value in BASE_HEADERS.items():
                    out.setdefault(name, value)
                html = out.get("content-type", "").startswith("text/html")
                if html and not path.startswith(NO_CSP_PREFIXES):
                    out["content-security-policy"] = csp
            await send(message)

        return wrapped

    def _origin_ok(self, scope: Scope, headers: Headers, origin: str | None, host: str) -> bool:
        """Websockets and unsafe methods: the page's origin must be ours or configured."""
        if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
            return True
        if origin is not None and origin != "null":
            origin = origin.rstrip("/").lower()
            own = {f"http://{host.lower()}", f"https://{host.lower()}"}
            return origin in own or origin in self.origins or "*" in self.origins
        if scope["type"] == "websocket":
            return origin is None  # scripts send no Origin; a browser's "null" is opaque
        # Under Referrer-Policy: no-referrer a browser's own same-origin POST says
        # Origin: null, so the browser's Sec-Fetch-Site decides between null origins.
        site = headers.get("sec-fetch-site")
        return site not in ("cross-site", "same-site") or "*" in self.origins

    def _authorized(self, scope: Scope, headers: Headers) -> set[str]:
        """Where a valid token came with the request: "bearer", "cookie", "query"."""
        assert self.token is not None
        scheme, _, value = headers.get("authorization", "").partition(" ")
        candidates = []
        if scheme.lower() == "bearer":
            candidates.append(("bearer", value.strip()))
        cookie = cookie_parser(headers.get("cookie", "")).get(self.cookie)
        if cookie:
            candidates.append(("cookie", cookie))
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query:
            candidates.append(("query", query["token"]))
        return {
            source
            for source, given in candidates
            if secrets.compare_digest(given.encode(), self.token)
        }

    async def _set_cookie_and_redirect(self, scope: Scope, send: Send) -> None:
        """The first visit with ?token=: keep it in a cookie, drop it from the address bar."""
        assert self.token is not None
        rest = [
            (k, v)
            for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
            if k != "token"
        ]
        location = scope.get("root_path", "") + scope["path"]
        if rest:
            location += f"?{urlencode(rest)}"
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{self.cookie}={self.token.decode()}; HttpOnly; SameSite=Strict; Path=/{secure}"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _is_page_visit(scope: Scope) -> bool:
    """A browser opening a page (not an API call): where the cookie is worth setting."""
    return (
        scope["type"] == "http"
        and scope["method"] in ("GET", "HEAD")
        and not scope["path"].startswith(("/api/", "/openapi.json"))
    )


log = logging.getLogger("gradscope.security")
# Set in the task that refused a websocket: uvicorn then logs "returned without completing
# handshake" at ERROR for an upgrade answered with a refusal, which a page could repeat at will.
_refused: contextvars.ContextVar[bool] = contextvars.ContextVar("refused", default=False)


class RefusalLog:
    """Refusals at INFO, once per client and status per `every` seconds (a bounded table)."""

    def __init__(self, every: float = 60.0, clients: int = 1024) -> None:
        self.every, self.clients = every, clients
        self.last: OrderedDict[tuple[str, int], float] = OrderedDict()

    def note(self, client: str, status: int, path: str, message: str) -> bool:
        """Log the refusal unless this client had one logged lately; whether it was."""
        now, key = time.monotonic(), (client, status)
        if now - self.last.get(key, -self.every) < self.every:
            return False
        self.last[key] = now
        self.last.move_to_end(key)
        while len(self.last) > self.clients:
            self.last.popitem(last=False)
        log.info(
            "refused %s %s from %s: %s (more from it are not logged for a minute)",
            status,
            path,
            client,
            message,
        )
        return True


REFUSALS = RefusalLog()


class DropRefusedHandshakeErrors(logging.Filter):
    """Drops uvicorn's ERROR about a websocket that our middleware refused on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_refused.get() and "without completing handshake" in record.getMessage())


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """Answer `status` with the message: JSON for the API, plain text for pages."""
    client = (scope.get("client") or ("?", 0))[0]
    REFUSALS.note(client, status, scope.get("path", ""), message)
    api = scope["path"].startswith(("/api/", "/openapi.json", "/ws/"))
    if api:
        body = json.dumps({"detail": message}).encode()
        kind = b"application/json"
    else:
        body = (message + "\n").encode()
        kind = b"text/plain; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="gradscope"'))
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    _refused.set(True)
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        # A real HTTP answer to the upgrade: the client sees the status and the reason.
        start = {"type": "websocket.http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        # Closing before accepting makes the server answer the upgrade with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
