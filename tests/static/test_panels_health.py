"""The health panel in a real browser: charts over steps of gradient norms, update/weight
ratios and dead-ReLU shares, the latest table, and bounded memory on a long run."""

from __future__ import annotations

import itertools
from typing import Any

from tests.server.conftest import Server

TIMEOUT = 90_000  # ms
PANEL = "#panel-health"

# Pixels of a colour on a chart's canvas: the first series is drawn in #1f77b4.
PIXELS = """([key, rgb]) => {
    const c = document.querySelector(`#panel-health [data-chart=${key}] canvas`);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
        if (Math.abs(d[i] - rgb[0]) < 8 && Math.abs(d[i + 1] - rgb[1]) < 8
            && Math.abs(d[i + 2] - rgb[2]) < 8 && d[i + 3] > 200) n++;
    }
    return n;
}"""


def test_health_charts_follow_a_run(dashboard: Server, page: Any) -> None:
    run = dashboard.create("moons", steps=400, record={"every": 10})
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    health = [e for e in dashboard.events(run["id"]) if e["type"] == "health"]
    assert len(health) >= 40
    page.wait_for_function(
        f"document.querySelector('{PANEL}').dataset.records === '{len(health)}'", timeout=TIMEOUT
    )
    panel = page.locator(PANEL)
    assert panel.get_attribute("data-stored") == str(len(health))
    assert panel.get_attribute("data-step") == str(health[-1]["step"])
    last = health[-1]["data"]
    params = list(last["grad_norm"])
    assert params == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    charts = {
        "grad_norm": len(params),
        "update_ratio": len(params),
        "dead_relu": len(last["dead_relu"]),
    }
    for key, series in charts.items():
        chart = page.locator(f"{PANEL} [data-chart={key}]")
        assert chart.get_attribute("data-series") == str(series)
        assert chart.get_attribute("data-points") == str(len(health))
        assert page.evaluate(PIXELS, [key, [0x1F, 0x77, 0xB4]]) > 50, key
    # The dashed 1e-3 reference line on the ratio chart is black.
    assert page.evaluate(PIXELS, ["update_ratio", [0, 0, 0]]) > 20
    assert "log scale" in page.locator(f"{PANEL} figcaption").first.inner_text()
    # The latest record is still a table.
    rows = page.locator(f"{PANEL} .health-latest tbody tr")
    assert rows.count() == len(params) + len(last["dead_relu"])
    first = rows.first.locator("td").all_inner_texts()
    assert abs(float(first[0]) - last["grad_norm"]["0.weight"]) <= 1e-4 + 1e-3 * abs(
        last["grad_norm"]["0.weight"]
    )
    assert f"as of step {health[-1]['step']}" in page.locator(PANEL).inner_text()


# Feeds synthetic events to the real HealthPanel module on the page and reads back what
# its uPlot charts were given. Event i: grad norms (i + 1) and 0 (the log axis drops 0),
# a ratio that is "inf" every 7th record, a dead share of 0.25; a second ReLU module that
# only shows up halfway.
SYNTHETIC = """async (n) => {
    const { default: HealthPanel, MAX_STORED } = await import('/static/js/panels/health.js');
    const el = document.createElement('section');
    el.className = 'card panel';
    el.innerHTML = '<div class="panel-body"></div>';
    document.querySelector('main').append(el);
    const p = new HealthPanel(el);
    let batches = 0;
    for (let i = 0; i < n; i++) {
        const dead = i >= Math.floor(n / 2) ? { '1': 0.25, '3': 0.5 } : { '1': 0.25 };
        p.add({ type: 'health', step: 10 * (i + 1), data: {
            grad_norm: { w: i + 1, b: 0 },
            update_ratio: { w: i % 7 === 0 ? 'inf' : 1e-3, b: 2e-3 },
            dead_relu: dead } });
        if (i % 500 === 499) { p.draw(); batches++; }
    }
    p.draw();
    const data = (k) => p.plots[k].plot.data;
    return {
        cap: MAX_STORED, batches, stored: p.history.n, records: el.dataset.records,
        steps: data('grad_norm')[0], grad: data('grad_norm').slice(1, 3),
        ratio: data('update_ratio').slice(1), dead: data('dead_relu').slice(1),
        rows: el.querySelectorAll('.health-latest tr').length,
        text: el.querySelector('.health-latest').textContent,
    };
}"""


def test_health_history_is_bounded_and_charted_as_sent(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/")
    n = 10_001
    out = page.evaluate(SYNTHETIC, n)
    cap, steps = out["cap"], out["steps"]
    assert out["records"] == str(n)
    # Thinned to at most twice the cap, the whole run still spanned, evenly, the latest kept.
    assert cap <= out["stored"] < 2 * cap and len(steps) == out["stored"]
    assert steps[0] == 10 and steps[-1] == 10 * n
    gaps = {b - a for a, b in itertools.pairwise(steps[:-1])}
    assert len(gaps) == 1 and 0 < steps[-1] - steps[-2] <= gaps.pop()
    grad_w, grad_b = out["grad"]
    assert grad_w == [s / 10 for s in steps]  # record i has grad norm i + 1 = step / 10
    assert grad_b == [None] * len(steps)  # zero has no place on a log axis
    ratio_w, ratio_b, reference = out["ratio"]
    assert all(r is None if (s // 10 - 1) % 7 == 0 else r == 1e-3 for s, r in zip(steps, ratio_w))
    assert set(ratio_b) == {2e-3} and set(reference) == {1e-3}
    dead1, dead3 = out["dead"]
    assert set(dead1) == {25.0}  # percent
    half = [s > 10 * (n // 2) for s in steps]
    assert [v is not None for v in dead3] == half and {v for v in dead3 if v} == {50.0}
    # The table: the latest record's 2 parameters and 2 ReLU modules, plus the header row.
    assert out["rows"] == 5
    assert f"as of step {10 * n}" in out["text"] and "50.0% dead" in out["text"]
