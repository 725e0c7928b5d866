"""The loss panel's x axis in a real browser: by step, by fractional epoch, by wall time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Server

TIMEOUT = 90_000  # ms
PANEL = "#panel-loss"


def _x_mode(page: Any, mode: str) -> dict[str, str]:
    page.select_option(f"{PANEL} select[name=x]", mode)
    page.wait_for_function(f"document.querySelector('{PANEL}').dataset.x === '{mode}'")
    return page.evaluate(f"() => ({{...document.querySelector('{PANEL}').dataset}})")


def test_x_by_step_epoch_and_time(dashboard: Server, page: Any) -> None:
    # 400 moons in batches of 32: 13 steps an epoch (the last batch short), 60 steps. Started
    # paused and resumed once the page is live, so every point arrives live with its time.
    run = dashboard.create("moons", steps=60, batch_size=32, start_paused=True)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function("document.querySelector('#state-badge').textContent === 'paused'")
    assert dashboard.request("POST", f"/api/runs/{run['id']}/resume").status_code == 200
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    page.wait_for_function(f"document.querySelector('{PANEL}').dataset.points === '60'")
    train = [
        e
        for e in dashboard.events(run["id"])
        if e["type"] == "metrics" and "train_loss" in e["data"]
    ]
    assert [e["step"] for e in train] == list(range(1, 61))

    step = _x_mode(page, "step")
    assert (step["xLast"], step["xDistinct"], step["drawn"]) == ("60", "60", "60")

    epoch = _x_mode(page, "epoch")
    assert epoch["stepsPerEpoch"] == "13"
    # Fractional: the 60 points spread over 60/13 epochs, none stacked on an integer.
    assert float(epoch["xLast"]) == pytest.approx(60 / 13)
    assert epoch["xDistinct"] == "60"

    time = _x_mode(page, "time")
    assert float(time["xLast"]) == pytest.approx(train[-1]["t"] - train[0]["t"])

    again = _x_mode(page, "step")
    assert again["xLast"] == "60" and int(again["draws"]) > int(step["draws"])


# The real LossPanel on the page, fed a full-batch run's hello (the server counts one step an
# epoch: steps_per_epoch 1) and events whose epoch field ticks every 10 steps: the events win.
# A second panel shows that the hello's count is used as the server sent it.
EPOCHS_FROM_EVENTS = """async () => {
    const { default: LossPanel } = await import('/static/js/panels/loss.js');
    const panel = (hello) => {
        const el = document.createElement('section');
        el.innerHTML = '<div class="panel-body"></div>';
        document.querySelector('main').append(el);
        return [new LossPanel(el, hello), el];
    };
    const [p, el] = panel({ steps_per_epoch: 1 });
    const before = p.spe;
    for (let s = 1; s <= 35; s++) {
        const data = { epoch: Math.floor(s / 10), train_loss: 1 / s };
        p.add({ type: 'metrics', step: s, t: s, data });
    }
    p.xMode = 'epoch';
    p.rebuild();
    return {
        before, after: p.spe, xLast: Number(el.dataset.xLast),
        mnist: panel({ steps_per_epoch: 938 })[0].spe,
        unknown: panel({ steps_per_epoch: null })[0].spe,
    };
}"""


def test_steps_per_epoch_come_from_the_events(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/")
    out = page.evaluate(EPOCHS_FROM_EVENTS)
    assert out["before"] == 1 and out["after"] == 10
    assert out["xLast"] == pytest.approx(3.5)
    assert out["mnist"] == 938 and out["unknown"] == 1


def test_the_hello_carries_steps_per_epoch(dashboard: Server, page: Any) -> None:
    # 400 moons in batches of 32: the page's epoch axis uses the server's 13, not its own sum.
    run = dashboard.create("moons", steps=5, batch_size=32)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        f"document.querySelector('{PANEL}').dataset.stepsPerEpoch === '13'", timeout=TIMEOUT
    )
    source = page.evaluate("() => fetch('/static/js/panels/loss.js').then(r => r.text())")
    assert "60000" not in source and "batch_size" not in source
