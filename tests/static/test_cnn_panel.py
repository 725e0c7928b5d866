"""The CNN panel in a real browser: the first conv layer's kernels and one test digit's feature
maps after every conv and pool layer, following the timeline's frames."""

from __future__ import annotations

import base64
from typing import Any

from gradscope.server.runs.events import FRAME_TYPES
from tests.server.conftest import Server
from tests.static.conftest import ARTIFACTS
from tests.static.test_timeline import scrub

TIMEOUT = 120_000  # ms
PANEL = "#panel-cnn"
LAYERS = ["test digit #0 (a 7)", "conv 1 (relu)", "pool 1", "conv 2 (relu)", "pool 2"]

# Each canvas's red channel, per layer row: the panel paints a map's byte b as (b, b, b).
ROWS = """() => [...document.querySelectorAll('#panel-cnn .fmap-layer')].map((row) =>
  [...row.querySelectorAll('canvas')].map((c) => [...c.getContext('2d')
    .getImageData(0, 0, c.width, c.height).data].filter((_, i) => i % 4 === 0)))"""


def test_the_cnn_panel_shows_kernels_and_maps_at_each_frame(dashboard: Server, page: Any) -> None:
    # A short CNN run, one epoch of 32 steps: the panel needs frames, not accuracy (and each
    # test pass of a CNN takes seconds). Every 8 steps a frame.
    run = dashboard.create(
        "mnist-cnn", steps=32, dataset={"mnist_train_limit": 2000}, record={"every": 8}
    )
    dashboard.wait_for(run["id"], lambda r: r["state"] == "finished", timeout=120)
    events = dashboard.events(run["id"])
    maps = [e for e in events if e["type"] == "feature_maps"]
    # One at every frame: step 0, then every 8 steps.
    frames = sorted({e["step"] for e in events if e["type"] in FRAME_TYPES})
    assert [e["step"] for e in maps] == frames == [0, 8, 16, 24, 32]
    at = {e["step"]: e for e in maps}
    page.set_viewport_size({"width": 1440, "height": 1100})
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        f"document.querySelector('{PANEL} .fmaps')?.dataset.step === '32'", timeout=TIMEOUT
    )
    panel = page.locator(PANEL)
    assert panel.is_visible() and panel.get_attribute("data-step") == "32"
    kernels = panel.locator(".kernels")
    assert kernels.get_attribute("data-count") == "8"
    rows = panel.locator(".fmap-layer")
    assert rows.evaluate_all("l => l.map(r => r.dataset.layer)") == LAYERS
    assert rows.evaluate_all("l => l.map(r => Number(r.dataset.count))") == [1, 8, 8, 16, 16]

    def drawn_matches(event: dict[str, Any]) -> None:
        """The canvases hold the event's bytes: the digit, then each layer's maps."""
        drawn = page.evaluate(ROWS)
        want = [[event["data"]["image"]]] + [layer["images"] for layer in event["data"]["layers"]]
        for row, images in zip(drawn, want, strict=True):
            assert [list(base64.b64decode(b)) for b in images] == row

    drawn_matches(at[32])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "test_cnn_panel-1440.png"))

    # Scrubbed back, the panel shows that frame's maps (the network of step 8).
    scrub(page, 8)
    page.wait_for_function(
        f"document.querySelector('{PANEL} .fmaps').dataset.step === '8'", timeout=10_000
    )
    assert panel.get_attribute("data-step") == "8"
    drawn_matches(at[8])
    assert at[8]["data"]["layers"][0]["images"] != at[32]["data"]["layers"][0]["images"]

    page.set_viewport_size({"width": 390, "height": 1100})
    page.get_by_role("button", name="Live").click()
    page.wait_for_function(
        f"document.querySelector('{PANEL} .fmaps').dataset.step === '32'", timeout=10_000
    )
    panel.screenshot(path=str(ARTIFACTS / "test_cnn_panel-390.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_cnn_panel_stays_hidden_for_an_mlp(dashboard: Server, page: Any) -> None:
    """An MLP's MNIST run records first_layer too (28x28 weights): only the MNIST panel shows."""
    run = dashboard.create("mnist-mlp", steps=5, dataset={"mnist_train_limit": 500})
    dashboard.wait_for(run["id"], lambda r: r["state"] == "finished", timeout=120)
    assert any(e["type"] == "first_layer" for e in dashboard.events(run["id"]))
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#panel-mnist .units')?.dataset.step === '5'", timeout=TIMEOUT
    )
    assert page.locator("#panel-mnist").is_visible() and page.locator(PANEL).is_hidden()
