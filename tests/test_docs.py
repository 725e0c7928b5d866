"""Every setting, event type, panel and route appears in the docs (datasette's test_docs.py).

The fields of each event are checked against docs/events.md in tests/server/test_events.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
from starlette.routing import BaseRoute, Mount

from gradscope.server.runs.events import EventType
from gradscope.server.settings import Settings
from gradscope.server.web.app import create_app
from gradscope.server.web.panels import PANELS

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def app_routes() -> list[BaseRoute]:
    """create_app()'s routes, with included routers flattened."""
    app = create_app(Settings())
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # before FastAPI kept included routers nested, app.routes was flat
        return list(app.routes)
    return [context.route for context in iter_route_contexts(app.routes)]


def route_ids() -> list[tuple[str, str]]:
    """(method, path) for each HTTP route ("WS" for a websocket, "MOUNT" for a mount)."""
    found = []
    for route in app_routes():
        path = route.path  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            found.append(("MOUNT", path))
        elif getattr(route, "methods", None) is None:
            found.append(("WS", path))
        else:
            found += [(m, path) for m in sorted(route.methods - {"HEAD"})]  # type: ignore[attr-defined]
    return sorted(set(found))


def path_pattern(path: str) -> str:
    """A path as the docs may write it: {run_id} as is or as an upper-case name (ID, KIND)."""
    parts = re.split(r"(\{\w+\})", path)
    return "".join(r"(\{\w+\}|[A-Z_]+)" if p.startswith("{") else re.escape(p) for p in parts)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    variable = f"GRADSCOPE_{name.upper()}"
    assert variable in DOCS, f"{variable} is not in README.md or docs/*.md"


@pytest.mark.parametrize(("method", "path"), route_ids())
def test_every_route_is_documented(method: str, path: str) -> None:
    pattern = path_pattern(path)
    if method == "MOUNT":
        pattern += "/"  # a folder: /static/...
    elif method == "WS":
        pattern = rf"(?<![\w/]){pattern}(?![\w/{{])"
    else:
        pattern = rf"\b{method}\b[`\s|]+{pattern}(?![\w/{{])"
    assert re.search(pattern, DOCS), f"{method} {path} is not in README.md or docs/*.md"


def test_the_checks_see_what_they_check() -> None:
    ids = route_ids()
    assert ("WS", "/ws/runs/{run_id}") in ids and ("GET", "/docs") in ids
    assert ("DELETE", "/api/runs/{run_id}") in ids and ("MOUNT", "/static") in ids
    assert re.fullmatch(path_pattern("/api/runs/{run_id}/step"), "/api/runs/ID/step")
    assert not re.search(rf"\bGET\b[`\s|]+{path_pattern('/api/runs')}(?![\w/{{])", "GET /api/runsx")


@pytest.mark.parametrize("kind", get_args(EventType))
def test_every_event_type_is_documented(kind: str) -> None:
    events_md = (ROOT / "docs" / "events.md").read_text()
    assert re.search(rf"`{kind}`", events_md), f"event type {kind} is not in docs/events.md"


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.name)
def test_every_panel_is_documented_and_draws_real_events(panel: Any) -> None:
    panels_md = (ROOT / "docs" / "panels.md").read_text()
    assert f"`{panel.name}`" in panels_md and f"`{panel.module}`" in panels_md, panel
    assert set(panel.events) <= set(get_args(EventType)), panel.events
