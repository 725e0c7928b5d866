"""The rendering budget: a long run's loss curve through the real page stays drawn in
batches, downsampled for display only, and the page's memory stops growing.

The test writes hundreds of thousands of `metrics` events into a finished run's store, as
`gradscope train` or a worker would; the real server's hub tails the store and streams them
to the real run page over its websocket, in batches. Nothing is timed: counts of points,
websocket messages, draws and heap bytes are compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gradscope.server.store import Store
from tests.server.conftest import Server
from tests.static.conftest import CHROMIUM, FLAGS

TIMEOUT = 180_000  # ms
PANEL = "document.querySelector('#panel-loss')"
CHUNK = 5000  # events per store transaction
HALF = 300_000  # events per half of the stream: past MAX_HELD, so thinning has happened
# Counts the websocket messages the page receives (the event batches), without touching
# what the page does with them.
COUNT_MESSAGES = """
window.__wsMessages = 0;
const PageWebSocket = window.WebSocket;
window.WebSocket = class extends PageWebSocket {
    constructor(...args) {
        super(...args);
        this.addEventListener('message', () => { window.__wsMessages++; });
    }
};
"""


@pytest.fixture(scope="module")
def browser(browser: Any) -> Iterator[Any]:
    """This module's own Chromium (from the session's Playwright): heap sizes unrounded,
    and a gc() to measure after."""
    flags = [*FLAGS, "--enable-precise-memory-info", "--js-flags=--expose-gc"]
    b = browser.browser_type.launch(executable_path=CHROMIUM, args=flags, headless=True)
    try:
        yield b
    finally:
        b.close()


def _append(store: Store, run_id: str, first_step: int, count: int) -> None:
    """count metrics events from first_step on, a decaying noisy loss, in transactions."""
    for start in range(0, count, CHUNK):
        events = []
        for step in range(first_step + start, first_step + min(start + CHUNK, count)):
            loss = 1.0 / (1.0 + step * 1e-4) + 0.01 * ((step * 7919) % 13) / 13
            # A step's metrics as the training loop hands them over (a StepLoss tuple):
            # the event {"epoch": step, "train_loss": loss} at that step and time.
            events.append((step, 1.7e9 + step * 1e-3, step, loss))
        store.append_events(run_id, events)


def _heap(page: Any) -> int:
    return page.evaluate("() => { gc(); gc(); return performance.memory.usedJSHeapSize; }")


def _panel(page: Any) -> dict[str, int]:
    data = page.evaluate(f"() => ({{...{PANEL}.dataset}})")
    return {k: int(float(v)) for k, v in data.items() if k in ("points", "held", "drawn", "draws")}


def _frame(page: Any) -> bool:
    """A requestAnimationFrame round trip: the page still draws frames."""
    return page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
    )


def test_a_long_run_stays_within_budget(dashboard: Server, page: Any) -> None:
    run = dashboard.create("napkin-average", steps=20)
    rid = run["id"]
    dashboard.wait_for(rid, lambda r: r["state"] == "finished")
    page.add_init_script(COUNT_MESSAGES)
    page.goto(f"{dashboard.url}/runs/{rid}")
    page.wait_for_function(f"{PANEL}.dataset.points === '20'", timeout=TIMEOUT)
    max_drawn, max_held = page.evaluate(
        "async () => { const m = await import('/static/js/panels/loss.js');"
        " return [m.MAX_DRAWN, m.MAX_HELD]; }"
    )
    assert 2 * max_held > HALF > max_held  # the first half fills the store and thins it
    heaps = [_heap(page)]
    step, points = 21, 20
    store = Store(dashboard.data_dir)
    try:
        for _half in range(2):
            before, messages = _panel(page), page.evaluate("window.__wsMessages")
            _append(store, rid, step, HALF)
            step, points = step + HALF, points + HALF
            page.wait_for_function(f"{PANEL}.dataset.points === '{points}'", timeout=TIMEOUT)
            assert _frame(page)
            after = _panel(page)
            batches = page.evaluate("window.__wsMessages") - messages
            # Drawn in batches: at most one draw per websocket message (several coalesce
            # into one frame), never one per event; the latest event is on screen.
            draws = after["draws"] - before["draws"]
            assert 1 <= draws <= batches < HALF / 100
            readout = page.locator("#panel-loss .readout").inner_text()
            assert readout.startswith(f"step {step - 1} ")
            # Downsampled for display only: 100k+ points held, at most MAX_DRAWN drawn.
            assert after["points"] == points
            assert 100_000 <= after["held"] <= max_held
            assert after["drawn"] <= max_drawn
            heaps.append(_heap(page))
    finally:
        store.close()
    # Memory: the second half (300k more events) leaves the heap where the first left it;
    # a page that kept every event (a few hundred bytes each) would add ~100 MB.
    assert heaps[2] < 1.25 * heaps[1], heaps
    # The x-axis toggle still works on the long curve (full batch: one step an epoch).
    page.select_option("#panel-loss select[name=x]", "epoch")
    page.wait_for_function(f"{PANEL}.dataset.x === 'epoch'")
    assert float(page.evaluate(f"{PANEL}.dataset.xLast")) == step - 1
    assert _frame(page)
