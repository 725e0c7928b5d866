"""The MNIST panel in a real browser: first-layer weight images and the misclassified strip."""

from __future__ import annotations

import base64
from typing import Any

from tests.server.conftest import Server

TIMEOUT = 120_000  # ms

# The pixels a canvas holds, as [r, g, b] per pixel.
PIXELS = """(sel) => [...document.querySelectorAll(sel)].map((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const px = [];
  for (let i = 0; i < d.length; i += 4) px.push([d[i], d[i + 1], d[i + 2]]);
  return px;
})"""


def test_mnist_panel_shows_weights_and_mistakes(dashboard: Server, page: Any) -> None:
    run = dashboard.create(
        "mnist-mlp", dataset={"mnist_train_limit": 3200}, epochs=2, batch_size=64
    )
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    page.wait_for_function(
        "document.querySelector('#panel-mnist .misses')?.dataset.step === '100'",
        timeout=TIMEOUT,
    )
    panel = page.locator("#panel-mnist")
    assert panel.is_visible()
    units = panel.locator(".units")
    assert units.get_attribute("data-step") == "100" and units.get_attribute("data-count") == "32"

    # The canvases hold what the store recorded, through the documented colour maps.
    weights = dashboard.request("GET", f"/api/runs/{run['id']}/snapshots/first_layer").json()
    wrong = dashboard.request("GET", f"/api/runs/{run['id']}/snapshots/misclassified").json()
    assert weights["step"] == wrong["step"] == 100
    misses = panel.locator(".misses")
    assert misses.get_attribute("data-total") == str(wrong["data"]["total"])
    assert misses.get_attribute("data-count") == str(len(wrong["data"]["items"])) == "24"

    unit0 = base64.b64decode(weights["data"]["images"][0])
    drawn = page.evaluate(PIXELS, "#panel-mnist .units canvas")
    assert len(drawn) == 32 and len(drawn[0]) == 784
    for b, (r, g, bl) in zip(unit0, drawn[0], strict=True):
        v = (b - 127.5) / 127.5  # red for positive, blue for negative, white at 0
        expect = (255, 255 * (1 - v), 255 * (1 - v)) if v >= 0 else (255 * (1 + v),) * 2 + (255,)
        assert max(abs(x - y) for x, y in zip((r, g, bl), expect, strict=True)) <= 1
    digit0 = base64.b64decode(wrong["data"]["images"][0])
    ink = page.evaluate(PIXELS, "#panel-mnist .misses canvas")[0]
    assert [255 - px[0] for px in ink] == list(digit0)
    first = wrong["data"]["items"][0]
    caption = panel.locator(".misses figcaption").first.inner_text()
    assert caption.startswith(f"{first['label']}→{first['pred']}")


def test_mnist_panel_stays_hidden_for_other_runs(dashboard: Server, page: Any) -> None:
    run = dashboard.create("moons", steps=100)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    page.wait_for_function("!document.querySelector('#panel-confusion').hidden")
    assert page.locator("#panel-mnist").is_hidden()
