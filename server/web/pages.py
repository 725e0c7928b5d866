"""The dashboard's HTML pages (Jinja2): the run list, a live run, a comparison, and /draw."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from gradscope.server import STATIC_DIR, TEMPLATES_DIR
from gradscope.server.runs.config import PRESETS
from gradscope.server.web.api.deps import RUN_ID_PATTERN, StoreDep

templates = Jinja2Templates(directory=TEMPLATES_DIR)
router = APIRouter(include_in_schema=False)
VENDOR = STATIC_DIR / "vendor"
MAX_COMPARED = 12


def vendor_ready() -> bool:
    """Whether `make vendor` copied the front-end libraries (uPlot, viz.js) into place."""
    return all((VENDOR / name).is_file() for name in ("uPlot.esm.js", "uPlot.min.css", "viz.js"))


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """Featured presets, the new-run form and the live run list."""
    featured = [p for p in PRESETS.values() if p.featured]
    return templates.TemplateResponse(
        request,
        "index.html",
        {"presets": list(PRESETS.values()), "featured": featured, "vendor": vendor_ready()},
    )


@router.get("/compare", response_class=HTMLResponse)
def compare(request: Request, store: StoreDep, runs: str = "") -> HTMLResponse:
    """Several runs' curves overlaid, with their hyperparameters and final figures."""
    ids = [r for r in runs.split(",") if r][:MAX_COMPARED]
    found = []
    for run_id in ids:
        run = store.get_run(run_id) if re.fullmatch(RUN_ID_PATTERN, run_id) else None
        if run is None:
            raise HTTPException(404, f"no run with id {run_id!r}")
        found.append(run)
    return templates.TemplateResponse(
        request, "compare.html", {"runs": found, "vendor": vendor_ready()}
    )


@router.get("/draw", response_class=HTMLResponse)
def draw(request: Request) -> HTMLResponse:
    """Draw a digit and watch the MNIST model's prediction (needs no vendored library)."""
    return templates.TemplateResponse(request, "draw.html", {"vendor": True})


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, store: StoreDep) -> HTMLResponse:
    """One run, live: controls and every panel."""
    run = store.get_run(run_id) if re.fullmatch(RUN_ID_PATTERN, run_id) else None
    if run is None:
        raise HTTPException(404, f"no run with id {run_id!r}")
    return templates.TemplateResponse(request, "run.html", {"run": run, "vendor": vendor_ready()})
