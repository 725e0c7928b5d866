"""The loss landscape and sharpness panels in a real browser: closed until asked, then the
napkin neuron's slice with its path ending in the valley, the timeline moving it, an lr past
the stability limit overshooting on the 1-D slice, and the sharpness against 2 / lr."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.server.conftest import Server

TIMEOUT = 60_000  # ms
LAND = "#panel-landscape"
SHARP = "#panel-sharpness"
SHOTS = os.environ.get("GRADSCOPE_LANDSCAPE_SHOTS")  # a folder: save screenshots there


def finished(server: Server, **config: Any) -> str:
    run = server.create("napkin-average", dataset={"n": 100}, record={"every": 10}, **config)
    server.wait_for(run["id"], lambda r: r["state"] in ("finished", "failed"), timeout=60)
    return run["id"]


def open_panel(page: Any, server: Server, run_id: str, panel: str) -> None:
    page.goto(f"{server.url}/runs/{run_id}")
    page.wait_for_function(
        f"!document.querySelector('{panel}').hidden && "
        f"document.querySelector('{panel}').dataset.state === 'closed'",
        timeout=TIMEOUT,
    )
    page.locator(f"{panel} button").first.click()


def ready(page: Any, panel: str, extra: str = "true") -> None:
    page.wait_for_function(
        f"(() => {{ const d = document.querySelector('{panel}').dataset;"
        f" return d.state === 'ready' && ({extra}); }})()",
        timeout=TIMEOUT,
    )


def pair(text: str) -> tuple[float, float]:
    x, y = text.split(",")
    return float(x), float(y)


def shot(page: Any, name: str, panel: str) -> None:
    if SHOTS:
        page.locator(panel).screenshot(path=f"{SHOTS}/{name}.png")


def test_the_napkin_landscape_draws_its_path_into_the_valley(dashboard: Server, page: Any) -> None:
    run_id = finished(dashboard)
    open_panel(page, dashboard, run_id, LAND)
    # Nothing is computed before the button: the first answer is random directions, then the
    # first two weights (the napkin neuron's w0, w1).
    ready(
        page,
        LAND,
        "d.drawnStep === '300' && document.querySelector('#panel-landscape select').value === 'w0'",
    )
    page.wait_for_function(
        f"document.querySelector('{LAND} canvas.landscape-map') && "
        f"document.querySelector('{LAND}').dataset.pathEnd.split(',').length === 2",
        timeout=TIMEOUT,
    )
    end, low = (
        pair(page.get_attribute(LAND, "data-path-end")),
        pair(page.get_attribute(LAND, "data-min")),
    )
    assert abs(end[0] - 0.25) < 0.02 and abs(end[1] - 0.25) < 0.02
    assert abs(end[0] - low[0]) < 0.05 and abs(end[1] - low[1]) < 0.05
    # The heat map is painted (the viridis colours, not a blank canvas).
    painted = page.evaluate(
        """(sel) => { const c = document.querySelector(sel);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200) n++;
        return n / (d.length / 4); }""",
        f"{LAND} canvas.landscape-map",
    )
    assert painted > 0.5
    shot(page, "napkin_landscape", LAND)
    # The timeline moves it: scrubbed to step 100, the landscape of step 100, the path shorter.
    page.locator("#timeline").evaluate(
        "(t) => { t.value = 100; t.dispatchEvent(new Event('input', { bubbles: true })); }"
    )
    ready(page, LAND, "d.drawnStep === '100' && d.step === '100'")
    moved = pair(page.get_attribute(LAND, "data-path-end"))
    assert moved[0] > end[0] + 0.02  # w0 walks down from 0.98: at step 100 it is still higher
    assert float(page.get_attribute(LAND, "data-step-loss")) < float(
        page.get_attribute(LAND, "data-start-loss")
    )
    # On a phone the heat map shrinks to the screen.
    page.set_viewport_size({"width": 390, "height": 900})
    page.wait_for_function(
        f"document.querySelector('{LAND} .landscape-map').getBoundingClientRect().right <= 390",
        timeout=TIMEOUT,
    )
    shot(page, "napkin_landscape_390", LAND)


def test_a_learning_rate_past_the_limit_overshoots(dashboard: Server, page: Any) -> None:
    run_id = finished(dashboard, optimizer={"lr": 1.2}, steps=12)
    open_panel(page, dashboard, run_id, LAND)
    ready(page, LAND, "d.drawnStep === '12'")
    step_loss = float(page.get_attribute(LAND, "data-step-loss"))
    assert step_loss > float(page.get_attribute(LAND, "data-start-loss"))
    assert float(page.get_attribute(LAND, "data-step-t")) > 2 * float(
        page.get_attribute(LAND, "data-valley-t")
    )
    assert "overshoots" in page.locator(f"{LAND} .landscape-caption").inner_text()
    shot(page, "overshoot_landscape", LAND)
    page.locator(f"{SHARP} button").first.click()
    ready(page, SHARP)
    limit = float(page.get_attribute(SHARP, "data-limit"))
    assert limit == pytest.approx(2 / 1.2)
    assert float(page.get_attribute(SHARP, "data-last")) > limit
    assert "above 2 / lr" in page.locator(SHARP).inner_text()
    shot(page, "sharpness_too_large", SHARP)
