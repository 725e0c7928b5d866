"""/docs: Swagger UI for the OpenAPI schema, from the vendored swagger-ui-dist (works offline)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from gradscope.server.settings import Settings

router = APIRouter(include_in_schema=False)
# `make vendor` copies these from npm's swagger-ui-dist (package.json pins the version).
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI, its script, styles and icon served from /static/vendor/ rather than a CDN."""
    js, css, icon = (f"/static/vendor/{name}" for name in SWAGGER_ASSETS)
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=js,
        swagger_css_url=css,
        swagger_favicon_url=icon,
    )


def with_settings_limits(app: FastAPI, settings: Settings) -> None:
    """Make the schema state this server's own limits: they are settings, not constants in
    the models (a schema saying n <= 1,000,000 against a server limit of 100,000 misled
    every client and fuzzer)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            step = schema["components"]["schemas"]["StepRequest"]["properties"]["n"]
            step["maximum"] = settings.max_step_request
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
