"""/compare in Chromium: runs grouped by a config key into a mean line with a band each, the
choices kept in the URL, live updates while a run records, an unknown id's error page, and a
phone's width.

The runs are written into the server's store from this process, as `gradscope train` writes
beside a running server (Store.append_events, the loop's own path): finished runs in
milliseconds, without a worker process each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradscope.server.runs.config import PRESETS
from gradscope.server.store import Store
from tests.server.conftest import Server

TIMEOUT = 60_000  # ms
UNKNOWN = "0123456789ab"
WIDE = """() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
    .slice(0, 5).map((e) => `${e.tagName}#${e.id}.${e.className}`)"""


def record(data_dir: Path, run_id: str, first: int, last: int, seed: int) -> None:
    """Steps first..last of a run: a falling loss with noise, test figures every 10 steps."""
    rng = np.random.default_rng(seed)
    store = Store(data_dir)
    try:
        batch: list[Any] = []
        for s in range(first, last + 1):
            batch.append((s, float(s), s // 10, float(1 / s + rng.random() / 10)))
            if s % 10 == 0:
                data = {
                    "epoch": s // 10,
                    "test_loss": 1 / s,
                    "test_acc": float(1 - rng.random() / s),
                }
                batch.append({"type": "metrics", "step": s, "data": data})
        store.append_events(run_id, batch, {"step": last})
    finally:
        store.close()


def write_run(dashboard: Server, steps: int, state: str = "finished", **changes: Any) -> str:
    """A run of the xor preset's config with `changes` (top-level or optimizer keys), its
    steps recorded, in `state`."""
    config = PRESETS["xor"].config.model_dump(mode="json")
    config["optimizer"]["lr"] = changes.pop("lr", config["optimizer"]["lr"])
    config.update(changes, steps=steps)
    store = Store(dashboard.data_dir)
    try:
        rid = store.create_run(config, preset="xor", name=None, source="cli", total_steps=steps).id
        store.set_state(rid, "running")
    finally:
        store.close()
    record(dashboard.data_dir, rid, 1, steps, config["seed"])
    if state != "running":
        store = Store(dashboard.data_dir)
        store.set_state(rid, state)
        store.close()
    return rid


@pytest.fixture(scope="module")
def grid(dashboard: Server) -> list[dict[str, Any]]:
    """2 learning rates x 2 seeds, finished."""
    ids = [write_run(dashboard, 60, lr=lr, seed=seed) for lr in (0.05, 0.3) for seed in (1, 2)]
    return [dashboard.run(rid) for rid in ids]


def drawn(page: Any) -> list[dict[str, Any]]:
    return json.loads(page.get_attribute("#compare-chart", "data-series"))


def test_two_lrs_by_two_seeds_draw_two_means_with_bands(
    dashboard: Server, page: Any, grid: list[dict[str, Any]]
) -> None:
    ids = ",".join(r["id"] for r in grid)
    page.goto(f"{dashboard.url}/compare?runs={ids}")
    page.wait_for_selector("#compare[data-ready=true]", timeout=TIMEOUT)
    assert [s["label"] for s in drawn(page)] == [r["name"] for r in grid]  # names, not ids
    page.select_option("#group", "optimizer.lr")
    page.wait_for_function("document.querySelector('#compare').dataset.fetches === '2'")
    lines = drawn(page)
    assert [(s["label"], s["runs"], s["band"]) for s in lines] == [
        ("lr=0.05", 2, True),
        ("lr=0.3", 2, True),
    ]
    legend = page.locator("#compare-chart .u-legend .u-series:visible .u-label")
    assert legend.all_inner_texts() == ["step", "lr=0.05 (2 runs)", "lr=0.3 (2 runs)"]
    assert "group=optimizer.lr" in page.url
    # "everything but the seed" is offered: here, the learning rate alone.
    assert page.locator("#group option[value='optimizer.lr']").count() == 2
    # The table: a row per run, only the keys that differ, the server's final figures.
    heads = page.locator("#compare-table thead th").all_inner_texts()
    assert "lr" in heads and "seed" in heads and "engine" not in heads
    for r in grid:
        row = page.locator(f"#compare-table tr[data-run-id='{r['id']}']")
        shown = float(row.locator("[data-final=train_loss]").inner_text())
        assert shown == pytest.approx(r["summary"]["train_loss"]["final"], rel=1e-3)
    assert page.get_attribute("#parcoords", "data-lines") == "4"
    assert page.get_attribute("#parcoords", "data-axes") == "3"  # lr, seed, the figure
    # The band choice is drawn from the same answer: no new request.
    page.select_option("#band", "none")
    assert not any(s["band"] for s in drawn(page))
    assert page.get_attribute("#compare", "data-fetches") == "2"


def test_a_recording_run_updates_live(
    dashboard: Server, page: Any, grid: list[dict[str, Any]]
) -> None:
    live = write_run(dashboard, 30, state="running", seed=3)
    page.goto(f"{dashboard.url}/compare?runs={grid[0]['id']},{live}")
    page.wait_for_selector("#compare[data-ready=true]", timeout=TIMEOUT)
    assert drawn(page)[1]["points"] == 30
    record(dashboard.data_dir, live, 31, 80, 3)  # what a worker commits meanwhile
    page.wait_for_function(
        "JSON.parse(document.querySelector('#compare-chart').dataset.series)[1].points === 80",
        timeout=TIMEOUT,
    )
    row = page.locator(f"#compare-table tr[data-run-id='{live}']")
    expect_step = "80 / 30"  # the steps done, of the total it was created with
    page.wait_for_function(
        f"document.querySelector(\"#compare-table tr[data-run-id='{live}']\")"
        f".textContent.includes('{expect_step}')"
    )
    final = dashboard.run(live)["summary"]["train_loss"]["final"]
    assert float(row.locator("[data-final=train_loss]").inner_text()) == pytest.approx(
        final, rel=1e-3
    )


def test_an_unknown_run_is_an_error_page(dashboard: Server, page: Any) -> None:
    page.allowed_errors = ("status of 404",)
    response = page.goto(f"{dashboard.url}/compare?runs={UNKNOWN}")
    assert response.status == 404
    assert "no run with id" in page.locator("#error-page").inner_text()


def test_the_compare_page_fits_a_phone(
    dashboard: Server, page: Any, grid: list[dict[str, Any]]
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    ids = ",".join(r["id"] for r in grid)
    page.goto(f"{dashboard.url}/compare?runs={ids}&group=optimizer.lr")
    page.wait_for_selector("#compare[data-ready=true]", timeout=TIMEOUT)
    assert page.evaluate(WIDE) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
