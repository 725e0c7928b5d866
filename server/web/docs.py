"""/docs: Swagger UI for the OpenAPI schema, from the vendored swagger-ui-dist (works offline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

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
