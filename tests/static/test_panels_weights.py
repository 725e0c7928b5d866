"""The panels that draw `weights` events, in a real browser: the weights panel's trajectories
stay bounded and its heat map shows the newest column, whatever the number of records
(chart.js's History); the network diagram places each weight by the event's `structure`."""

from __future__ import annotations

import itertools
from typing import Any

from tests.server.conftest import Server

# Feeds `n` weights events (two weights: the step and minus the step) to the real
# WeightsPanel and reads back what its uPlot chart and table were given.
TRAJECTORIES = """async (n) => {
    const { default: WeightsPanel, MAX_POINTS } = await import('/static/js/panels/weights.js');
    const el = document.createElement('section');
    el.className = 'card panel';
    el.innerHTML = '<div class="panel-body"></div>';
    document.querySelector('main').append(el);
    const hello = { config: { dataset: { name: 'moons' }, model: { hidden: [16] } } };
    const p = new WeightsPanel(el, hello);
    for (let s = 1; s <= n; s++) {
        p.add({ type: 'weights', step: s, data: { params: { w: [s], v: [-s] }, shapes: {} } });
        if (s % 1000 === 0) p.draw();
    }
    p.draw();
    const values = [...el.querySelectorAll('td[data-weight]')].map((td) => td.textContent);
    return { cap: MAX_POINTS, data: p.plot.data, points: el.dataset.points,
             step: el.dataset.step, values };
}"""

# Feeds histograms of one layer to the real WeightsPanel, drawing after the counts listed,
# and reads each drawing's heat map: columns, newest column's step, caption.
HEATMAP = """async (draws) => {
    const { default: WeightsPanel, MAX_COLUMNS } = await import('/static/js/panels/weights.js');
    const el = document.createElement('section');
    el.innerHTML = '<div class="panel-body"></div>';
    document.querySelector('main').append(el);
    const hello = { config: { dataset: { name: 'mnist' }, model: { hidden: [512] } } };
    const p = new WeightsPanel(el, hello);
    const out = [];
    const edges = Array.from({ length: 11 }, (_, i) => i / 10 - 0.5);
    for (let s = 1; s <= Math.max(...draws); s++) {
        const counts = Array.from({ length: 10 }, (_, b) => (b === s % 10 ? 5 : 1));
        p.add({ type: 'histograms', step: s, data: { layers: {
            '0.weight': { edges, counts, norm: 1, sample: [] } } } });
        if (draws.includes(s)) {
            p.draw();
            const c = el.querySelector('canvas[data-layer="0.weight"]');
            out.push({ step: s, columns: Number(c.dataset.columns),
                       last: Number(c.dataset.lastStep), caption: c.nextSibling.textContent });
        }
    }
    return { cap: MAX_COLUMNS, out };
}"""


def test_weight_trajectories_are_thinned_to_a_bound(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/")
    n = 10_001
    out = page.evaluate(TRAJECTORIES, n)
    steps, w, v = out["data"]
    cap = out["cap"]
    # Bounded, the whole run spanned evenly, the newest record kept and shown.
    assert cap <= len(steps) < 2 * cap and out["points"] == str(len(steps))
    assert steps[0] == 1 and steps[-1] == n and out["step"] == str(n)
    gaps = {b - a for a, b in itertools.pairwise(steps[:-1])}
    assert len(gaps) == 1 and 0 < steps[-1] - steps[-2] <= gaps.pop()
    assert w == steps and v == [-s for s in steps]
    assert out["values"] == [f"{n:.4f}", f"{-n:.4f}"]


def test_the_heat_map_keeps_the_newest_column(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/")
    draws = [5, 599, 600, 601, 602, 1201, 1500]
    result = page.evaluate(HEATMAP, draws)
    cap = result["cap"]
    # The newest record is on screen, thinned or not: in the caption and the canvas's hooks.
    for shown in result["out"]:
        step = shown["step"]
        assert shown["caption"].startswith(f"0.weight: histogram over time (x: step 1…{step},")
    for shown in result["out"]:
        assert shown["last"] == shown["step"] and 0 < shown["columns"] < 2 * cap, shown
    assert result["out"][0]["columns"] == 5
    assert result["out"][-1]["columns"] >= cap


# The real layers() of the network panel, given parameters whose names say nothing: where
# each weight goes is the event's structure alone.
NETWORK = """async () => {
    const { layers } = await import('/static/js/panels/network.js');
    const at = (layer, unit, input, kind = 'weight') => ({ layer, unit, input, kind });
    const scalar = layers({ params: { a: [0.1], b: [0.2], c: [0.3], d: [0.4], e: [9] }, shapes: {},
        structure: { a: at(0, 0, 0), b: at(0, 0, 1), c: at(0, 1, 0), d: at(1, 0, 1),
                     e: at(0, 0, null, 'bias') } });
    const tensor = layers({ params: { m: [1, 2, 3, 4, 5, 6], v: [7, 8] },
        shapes: { m: [2, 3], v: [2] },
        structure: { m: at(0, null, null), v: at(0, null, null, 'bias') } });
    return { scalar, tensor };
}"""


def test_the_network_places_weights_by_structure(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/")
    out = page.evaluate(NETWORK)
    assert out["scalar"]["mats"] == [[[0.1, 0.2], [0.3]], [[None, 0.4]]]
    assert out["tensor"]["mats"] == [[[1, 2, 3], [4, 5, 6]]]
    # Beside each weight, where it lives, as the interventions API names it.
    assert out["scalar"]["refs"][1][0][1] == {"param": "d", "index": []}
    assert out["tensor"]["refs"][0][1][2] == {"param": "m", "index": [1, 2]}
