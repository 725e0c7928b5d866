"""/draw in a real browser: mouse strokes on the canvas, the prediction, the preview, clear."""

from __future__ import annotations

import math
from typing import Any

from tests.server.conftest import Server
from tests.static.conftest import ARTIFACTS

TIMEOUT = 30_000  # ms
Stroke = list[tuple[float, float]]

# Strokes in canvas pixels (the pad is 280 x 280), drawn as a person would with a mouse.
DIGITS: dict[str, list[Stroke]] = {
    "1": [[(145, 45), (142, 140), (139, 235)]],
    "0": [
        [
            (140 + 62 * math.sin(2 * math.pi * t / 40), 140 - 92 * math.cos(2 * math.pi * t / 40))
            for t in range(41)
        ]
    ],
    "7": [[(75, 58), (205, 55), (160, 140), (125, 235)]],
}


def draw(page: Any, strokes: list[Stroke]) -> None:
    box = page.locator("#draw-canvas").bounding_box()
    sx, sy = box["width"] / 280, box["height"] / 280
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x * sx, box["y"] + y * sy)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=6)
        page.mouse.up()


def wait_answer(page: Any) -> str:
    page.wait_for_function(
        "document.querySelector('#prediction').dataset.state === 'done'", timeout=TIMEOUT
    )
    return page.locator("#prediction").get_attribute("data-digit")


def preview_ink(page: Any) -> float:
    """The sum of the preview canvas's gray levels (0 when empty)."""
    return page.evaluate("""() => {
        const c = document.querySelector('#preview');
        const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
        let s = 0;
        for (let i = 0; i < d.length; i += 4) s += d[i];
        return s;
    }""")


def test_draw_one_zero_seven(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/draw")
    page.wait_for_selector("#model-picker[data-loaded=true]")
    assert page.locator("#model-picker").input_value() == "bundled"
    assert page.locator("#preview").get_attribute("data-filled") == "false"
    for digit, strokes in DIGITS.items():
        draw(page, strokes)
        assert wait_answer(page) == digit
        assert page.locator("#prediction").inner_text() == digit
        # The 28x28 preview shows what the model saw; the winning bar is the tallest.
        assert page.locator("#preview").get_attribute("data-filled") == "true"
        assert preview_ink(page) > 255 * 40
        probs = [
            float(p) for p in page.locator("#bars li").evaluate_all("l => l.map(e => e.dataset.p)")
        ]
        assert abs(sum(probs) - 1) < 1e-3 and max(range(10), key=probs.__getitem__) == int(digit)
        assert page.locator("#bars li.top").get_attribute("data-digit") == digit
        # A digit is not flagged; inside, every layer the server sent is drawn.
        assert page.locator("#typical").is_hidden()
        assert layers_drawn(page) == ["hidden 1 (relu)", "hidden 2 (relu)", "logits"]
        page.wait_for_timeout(300)  # let the bars' short transition end before the picture
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"test_draw-{digit}.png"))
        page.click("#draw-clear")
        # Clear resets everything: the pad, the answer, the bars, the preview.
        assert page.locator("#prediction").get_attribute("data-digit") == ""
        assert page.locator("#prediction").get_attribute("data-state") == "idle"
        assert page.locator("#preview").get_attribute("data-filled") == "false"
        assert preview_ink(page) == 0
        assert page.locator("#bars li.top").count() == 0
        assert page.locator("#layers figure").count() == 0
        assert page.evaluate("""() => {
            const c = document.querySelector('#draw-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            return d.every((v) => v === 255);
        }""")


def layers_drawn(page: Any) -> list[str]:
    """The names of the layer figures whose canvases (or logits list) show something."""
    return page.evaluate("""() => [...document.querySelectorAll('#layers figure')]
        .filter((f) => f.querySelector('ol li') || [...f.querySelectorAll('canvas')].some((c) => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 0; i < d.length; i += 4) if (d[i] < 250) return true;
            return false;
        }))
        .map((f) => f.dataset.layer)""")


def test_a_drawing_unlike_any_digit_is_flagged(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/draw")
    page.wait_for_selector("#model-picker[data-loaded=true]")
    draw(page, [[(60, 60), (220, 220)], [(220, 60), (60, 220)]])  # an X
    wait_answer(page)
    flag = page.locator("#typical")
    assert flag.is_visible() and flag.get_attribute("data-unlike") == "true"
    assert "does not look like any MNIST digit" in flag.inner_text()
    assert "unlike any digit" in page.locator("#confidence").inner_text()
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 1100})
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"test_draw-X-{width}.png"), full_page=True)
    # At 390 px the page fits the screen: nothing wider than the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click("#draw-clear")
    assert flag.is_hidden()


def test_pick_a_finished_run(dashboard: Server, page: Any) -> None:
    run = dashboard.create(
        "mnist-mlp", steps=40, dataset={"name": "mnist", "mnist_train_limit": 4000}
    )
    dashboard.wait_for(run["id"], lambda r: r["state"] == "finished", timeout=120)
    page.goto(dashboard.url + "/draw")
    page.wait_for_selector("#model-picker[data-loaded=true]")
    options = page.locator("#model-picker option").evaluate_all("l => l.map(o => o.value)")
    assert options == ["bundled", "bundled-cnn", run["id"]]
    page.select_option("#model-picker", run["id"])
    assert page.url.endswith(f"/draw?model={run['id']}")
    draw(page, DIGITS["1"])
    wait_answer(page)
    assert page.locator("#prediction").get_attribute("data-model") == run["id"]
    assert run["id"] in page.locator("#confidence").inner_text()
    # Opening the page with ?model= picks that run again.
    page.reload()
    page.wait_for_selector("#model-picker[data-loaded=true]")
    assert page.locator("#model-picker").input_value() == run["id"]


CNN_LAYERS = ["conv 1 (relu)", "pool 1", "conv 2 (relu)", "pool 2", "hidden 1 (relu)", "logits"]


def test_the_cnn_shows_its_feature_maps(dashboard: Server, page: Any) -> None:
    """Pick the bundled CNN: it reads the digits, and each conv and pool layer is drawn as
    one map per channel, as the server sent them."""
    page.goto(dashboard.url + "/draw")
    page.wait_for_selector("#model-picker[data-loaded=true]")
    page.select_option("#model-picker", "bundled-cnn")
    assert page.url.endswith("/draw?model=bundled-cnn")
    assert "CNN 784-8-8-16-16-128-10" in page.locator("#model-info").inner_text()
    for digit in ("1", "7"):
        page.click("#draw-clear")
        draw(page, DIGITS[digit])
        assert wait_answer(page) == digit
        assert page.locator("#prediction").get_attribute("data-model") == "bundled-cnn"
        assert layers_drawn(page) == CNN_LAYERS
    maps = page.locator("#layers figure").evaluate_all(
        "l => l.map(f => [f.dataset.layer, f.querySelectorAll('.maps canvas').length])"
    )
    assert maps == [[n, c] for n, c in zip(CNN_LAYERS, [8, 8, 16, 16, 0, 0], strict=True)]
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 1100})
        page.wait_for_timeout(300)  # the bars' short transition
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"test_draw-cnn-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
