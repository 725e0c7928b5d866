"""Every error's HTTP answer, in one place: each error type's status, as JSON or as a page.

Domain errors say what went wrong by type (gradscope.server.errors); this table alone knows
which status each type is. The API answers `{"detail": ...}`; a page (/runs/{id}, /compare,
...) answers a readable HTML page with a link home.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gradscope.engine.jsonsafe import json_safe
from gradscope.server.errors import (
    Busy,
    Conflict,
    GradscopeError,
    Invalid,
    NotFound,
    TimedOut,
    TooLarge,
    Unavailable,
    Unsupported,
)
from gradscope.server.runs.config import ConfigError, field_path
from gradscope.server.store import StoreError
from gradscope.server.web import pages

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unsupported: 415,
    Invalid: 422,
    Busy: 429,
    Unavailable: 503,
    StoreError: 503,
    TimedOut: 504,
}


def status_of(exc: Exception) -> int:
    """The status of an error's nearest mapped type (500 for none: a bug)."""
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 500)


def detail_of(exc: Exception) -> Any:
    """The JSON `detail` of a domain error."""
    if isinstance(exc, ConfigError):
        # Only POST /api/runs resolves configs: name the field where its body holds it, in
        # the shape of FastAPI's own validation errors.
        where = ["preset"] if exc.field == "preset" else ["config", *field_path(exc.field)]
        return [
            {"loc": ["body", *where], "msg": exc.message, "type": "value_error", "field": exc.field}
        ]
    if isinstance(exc, StoreError):
        return f"the run store failed: {exc}"
    return exc.message if isinstance(exc, GradscopeError) else str(exc)


def is_page(request: Request) -> bool:
    """Whether the request is for one of the HTML pages (errors then answer as a page)."""
    return any(r.matches(request.scope)[0] == Match.FULL for r in pages.router.routes)


def error_page(request: Request, status: int, message: str) -> Response:
    """A readable HTML error page with a link home."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    context = {"status": status, "title": title, "message": message, "vendor": True}
    return pages.templates.TemplateResponse(request, "error.html", context, status_code=status)


class SafeJSONResponse(JSONResponse):
    """JSON that any input can go into: non-finite floats become strings and every
    non-ASCII character an escape, so a lone surrogate echoed back is never a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            json_safe(content), ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


async def domain_error(request: Request, exc: Exception) -> Response:
    """A domain error (or the store's failure) as its mapped status."""
    status, detail = status_of(exc), detail_of(exc)
    if is_page(request):
        return error_page(request, status, str(detail))
    return SafeJSONResponse({"detail": detail}, status_code=status)


def install(app: FastAPI) -> None:
    """Register the handlers: every mapped error type, and Starlette's HTTPException."""
    for error_type in STATUS:
        app.add_exception_handler(error_type, domain_error)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette's Allow names the first route on the path only (GET /api/runs and
            # POST /api/runs are two routes): list every method the path takes. Each method
            # is tried against the routes, since included routers nest theirs.
            allowed = {
                method
                for method in METHODS
                for route in app.router.routes
                if route.matches({**request.scope, "method": method})[0] == Match.FULL
            }
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
        elif exc.status_code >= 400 and is_page(request):
            return error_page(request, exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)

    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer echoes the input, and a NaN or 1e400 in it made a 500; each
        # error also names its field by the dotted path inside the body or query.
        errors = jsonable_encoder(exc.errors())
        for e in errors:
            loc = [str(part) for part in e.get("loc", ())]
            e.setdefault("field", ".".join(loc[1:] if len(loc) > 1 else loc))
        return SafeJSONResponse({"detail": errors}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid_request)
