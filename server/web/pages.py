"""The dashboard's HTML pages (Jinja2): the run list, a live run, a comparison, and /draw."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from gradscope.server import STATIC_DIR, TEMPLATES_DIR
from gradscope.server.runs.config import PRESETS, RunConfig
from gradscope.server.runs.sweeps import Sweeps, view
from gradscope.server.web.api.compare import check_count
from gradscope.server.web.api.deps import SettingsDep, StoreDep, find_run
from gradscope.server.web.panels import PANELS

templates = Jinja2Templates(directory=TEMPLATES_DIR)
router = APIRouter(include_in_schema=False)
VENDOR = STATIC_DIR / "vendor"
# The new-run form's fields: (dotted config path, label, placeholder). Each one's control,
# options, bounds and help text come from RunConfig's JSON schema.
FORM_FIELDS = (
    ("dataset.name", "Data set", ""),
    ("dataset.id", "Your CSV", ""),
    ("dataset.n", "Training points", ""),
    ("dataset.test_n", "Test points", ""),
    ("dataset.noise", "Noise", ""),
    ("dataset.classes", "Classes", "set by the data"),
    ("dataset.test_ratio", "CSV test share", ""),
    ("dataset.features", "Input features", ""),
    ("model.hidden", "Hidden layers", "none: one linear layer"),
    ("model.activation", "Activation", ""),
    ("model.output", "Output", ""),
    ("loss", "Loss", ""),
    ("optimizer.name", "Optimizer", ""),
    ("optimizer.lr", "Learning rate", ""),
    ("regularization.kind", "Regularization", ""),
    ("regularization.rate", "Regularization rate", ""),
    ("batch_size", "Batch size", "full batch"),
    ("epochs", "Epochs", ""),
    ("steps", "Steps", ""),
    ("seed", "Seed", ""),
)


def _schema_property(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The JSON schema of a dotted config path, its $refs and Optional (anyOf null) resolved."""
    node: dict[str, Any] = schema
    for key in path.split("."):
        node = node["properties"][key]
        if "$ref" in node:
            node = {**schema["$defs"][node["$ref"].rsplit("/", 1)[1]], **node}
        for branch in node.get("anyOf", ()):
            if branch.get("type") != "null":
                node = {**branch, **node}
    return node


def form_fields() -> list[dict[str, Any]]:
    """The new-run form's controls, rendered from RunConfig's schema (its Literals, its bounds)."""
    schema = RunConfig.model_json_schema()
    fields = []
    for path, label, placeholder in FORM_FIELDS:
        prop = _schema_property(schema, path)
        kind = "select" if "enum" in prop else prop.get("type")
        options = prop.get("enum", [])
        if kind == "array" and "enum" in prop.get("items", {}):
            kind, options = "choices", prop["items"]["enum"]  # a set of checkboxes
        elif path == "dataset.id":
            kind = "upload"  # a select of the uploaded sets, filled by index.js
        nullable = any(b.get("type") == "null" for b in prop.get("anyOf", ()))
        fields.append(
            {
                "name": path,
                "label": label,
                "placeholder": placeholder,
                "help": prop.get("description", ""),
                "kind": "number" if kind in ("integer", "number") else kind,
                "options": options,
                "min": prop.get("minimum", prop.get("exclusiveMinimum")),
                # min above is inclusive: the page refuses the bound itself (lr = 0) by this.
                "gt": prop.get("exclusiveMinimum"),
                "max": prop.get("maximum"),
                "step": "any" if kind == "number" else None,
                # Empty means null (batch size: full batch; steps when epochs are set).
                "nullable": nullable,
            }
        )
    return fields


NEW_RUN_FIELDS = form_fields()


def vendor_ready() -> bool:
    """Whether `make vendor` copied the front-end libraries (uPlot, viz.js) into place."""
    return all((VENDOR / name).is_file() for name in ("uPlot.esm.js", "uPlot.min.css", "viz.js"))


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """Featured presets, the live run table (sort, filter, select to compare, rename and
    tag) and the new-run form."""
    featured = [p for p in PRESETS.values() if p.featured]
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "presets": list(PRESETS.values()),
            "featured": featured,
            "fields": NEW_RUN_FIELDS,
            "vendor": vendor_ready(),
        },
    )


@router.get("/compare", response_class=HTMLResponse)
def compare(
    request: Request, store: StoreDep, settings: SettingsDep, runs: str = ""
) -> HTMLResponse:
    """Several runs' metrics overlaid or grouped (GET /api/compare draws them), with their
    hyperparameters, config diff and parallel coordinates."""
    ids = list(dict.fromkeys(r.strip() for r in runs.split(",") if r.strip()))
    check_count(ids, settings.max_compared)  # too many: the 422 page
    found = [find_run(store, run_id) for run_id in ids]  # an unknown id: the 404 page
    return templates.TemplateResponse(
        request, "compare.html", {"runs": found, "vendor": vendor_ready()}
    )


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(
    request: Request, sweep_id: str, store: StoreDep, settings: SettingsDep
) -> HTMLResponse:
    """A sweep: what it searches, its runs' states, its best run and setting, and its runs
    compared, grouped by the swept keys (compare.js)."""
    sweep = view(Sweeps(settings.data_dir).get(sweep_id), store)  # unknown: the 404 page
    return templates.TemplateResponse(
        request, "sweep.html", {"sweep": sweep, "vendor": vendor_ready()}
    )


@router.get("/draw", response_class=HTMLResponse)
def draw(request: Request) -> HTMLResponse:
    """Draw a digit and watch the MNIST model's prediction (needs no vendored library)."""
    return templates.TemplateResponse(request, "draw.html", {"vendor": True})


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, store: StoreDep) -> HTMLResponse:
    """One run, live: controls and every panel."""
    run = find_run(store, run_id)  # an unknown id: the 404 page
    context = {
        "run": run,
        "panels": PANELS,
        "vendor": vendor_ready(),
        "settings": settings_rows(run.config),
    }
    return templates.TemplateResponse(request, "run.html", context)


def settings_rows(config: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A run's config as (dotted key, value) rows, for the run page's settings list."""
    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(settings_rows(value, name + "."))
        elif value is not None:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            rows.append((name, shown or "none"))
    return rows
