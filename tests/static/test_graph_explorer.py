"""The graph panel as an explorer, a chain-rule inspector and a backprop stepper, in real
Chromium: wheel and drag move the view, "Fit" shows micrograd's whole expanded graph, labels
are readable at the default zoom, hover tips, search and keys; the inspector's numbers and
nudge check on the article's two graphs; the stepper's grads after k steps, back and end."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from gradscope.engine.backprop import MINUS, TIMES
from tests.server.conftest import Server
from tests.server.test_presets_micrograd import ARTICLE
from tests.static.conftest import ARTIFACTS

TIMEOUT = 60_000  # ms
GRAPH = "document.querySelector('#panel-graph')"

# The nodes whose grads the issue lists (and the neuron's n).
INSPECTED = {
    "micrograd-expression": ["a", "b", "c", "f", "d", "e"],
    "micrograd-neuron": ["x1", "w1", "x2", "w2", "n"],
}
RULES = {
    "micrograd-neuron": (
        "n",
        f"n.grad += o.grad {TIMES} (1 {MINUS} o.data²)\n  = 1.0000 {TIMES} 1.0000 = 1.0000",
    ),
    "micrograd-expression": (
        "a",
        f"a.grad += e.grad {TIMES} b.data\n  = -2.0000 {TIMES} -3.0000 = 6.0000",
    ),
}

# The view's transform (svg-pan-zoom's viewport group), as drawn.
MATRIX = """() => {
    const m = document.querySelector('#panel-graph .svg-pan-zoom_viewport').getCTM();
    return [m.a, m.e, m.f].map((v) => Math.round(v * 1000) / 1000);
}"""
# The smallest label text on screen: font size x the scale it is drawn at.
SMALLEST_TEXT = """() => Math.min(...[...document.querySelectorAll('#panel-graph svg text')]
    .map((t) => parseFloat(t.getAttribute('font-size')) * t.getScreenCTM().a))"""
# Whether the drawn graph lies inside the view (1 px of slack for rounding).
INSIDE = """() => {
    const v = document.querySelector('#panel-graph .graph-view').getBoundingClientRect();
    const g = document.querySelector('#panel-graph .svg-pan-zoom_viewport').getBoundingClientRect();
    return [g.left >= v.left - 1, g.top >= v.top - 1, g.right <= v.right + 1,
            g.bottom <= v.bottom + 1, g.width > v.width / 4];
}"""
# Each value node's shown grad text, by node index.
GRADS = """() => Object.fromEntries([...document.querySelectorAll(
    '#panel-graph g.node[data-node]:not([data-part])')].map((g) => [g.dataset.node,
    [...g.querySelectorAll('text')].map((t) => t.textContent)
        .find((t) => t.startsWith('grad'))]))"""

# The stepper's state as shown: phase, grads, the highlighted value node(s) and edges.
STEPPED = f"""() => ({{
    phase: document.querySelector('#panel-graph').dataset.stepper,
    grads: ({GRADS})(),
    current: [...document.querySelectorAll('#panel-graph g.node.is-current:not([data-part])')]
        .map((g) => g.dataset.node),
    edges: document.querySelectorAll('#panel-graph g.edge.is-current').length,
}})"""


def _next_frame(page: Any) -> None:
    """svg-pan-zoom draws a change on the next animation frame."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _moved(page: Any, before: list[float]) -> list[float]:
    page.wait_for_function(
        f"(b) => ({MATRIX})().some((v, i) => v !== b[i])", arg=before, timeout=TIMEOUT
    )
    return page.evaluate(MATRIX)


def test_the_explorer_zooms_pans_fits_finds_and_tips(dashboard: Server, page: Any) -> None:
    run = dashboard.create("micrograd-classifier", steps=5)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        f"{GRAPH}.dataset.groups === '4' && {GRAPH}.dataset.shown === '0' && "
        "document.querySelector('#panel-graph .svg-pan-zoom_viewport')",
        timeout=TIMEOUT,
    )
    _next_frame(page)
    # Collapsed, at the default zoom: every label is at least 10 px tall.
    assert page.evaluate(SMALLEST_TEXT) >= 10
    # The wheel zooms (the scale changes), a drag pans by what the mouse moved.
    page.locator("#panel-graph .graph-view").scroll_into_view_if_needed()
    view = page.locator("#panel-graph .graph-view").bounding_box()
    cx, cy = view["x"] + view["width"] / 2, view["y"] + view["height"] / 2
    before = page.evaluate(MATRIX)
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    zoomed = _moved(page, before)
    assert zoomed[0] > before[0]
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 40, steps=4)
    page.mouse.up()
    dragged = _moved(page, zoomed)
    assert dragged[0] == zoomed[0]
    assert abs(dragged[1] - zoomed[1] - 120) < 2 and abs(dragged[2] - zoomed[2] - 40) < 2

    # Expand all, then Fit: the whole graph (398 values) inside the panel's view.
    page.locator("#panel-graph").get_by_role("button", name="Expand all").click()
    page.wait_for_function(f"{GRAPH}.dataset.shown === '398'", timeout=TIMEOUT)
    page.locator("#panel-graph").get_by_role("button", name="Fit").click()
    _next_frame(page)
    assert all(page.evaluate(INSIDE)), page.evaluate(INSIDE)
    # Hovering an op node shows the value it computes: label, op, data, grad; no ids.
    graph = dashboard.request("GET", f"/api/runs/{run['id']}/snapshots/graph").json()["data"]
    page.wait_for_function(f"{GRAPH}.dataset.step === '5'", timeout=TIMEOUT)
    values = dashboard.request("GET", f"/api/runs/{run['id']}/snapshots/graph_values").json()
    data, grad = (values["data"][k][graph["root"]] for k in ("data", "grad"))
    op = graph["nodes"][graph["root"]]["op"]
    page.locator(f"#panel-graph g.node[data-node='{graph['root']}'][data-part='op']").hover()
    tip = page.locator("#panel-graph .graph-tip")
    tip.wait_for(state="visible", timeout=TIMEOUT)
    assert tip.inner_text().splitlines() == [
        "loss",
        f"op {op}",
        f"data {data:.4f}",
        f"grad {grad:.4f}",
    ]

    # Search by label: the node is found, focused and brought into view; Enter explains it.
    weight = next(i for i, n in enumerate(graph["nodes"]) if n["label"] == "L1.N2.w3")
    # The mouse away first: a hover where the search moves the view must not steal the tip.
    page.mouse.move(1, 1)
    search = page.locator("#panel-graph .graph-search")
    search.fill("l1.n2.w3")
    search.press("Enter")
    page.wait_for_function(f"document.activeElement?.dataset?.node === '{weight}'", timeout=TIMEOUT)
    # The tip follows the focus too.
    expect(tip).to_be_visible(timeout=TIMEOUT)
    expect(tip).to_contain_text("leaf (no op)", timeout=TIMEOUT)
    text = tip.inner_text()
    assert text.splitlines()[:2] == ["L1.N2.w3", "leaf (no op)"]
    assert re.search(r"^data -?\d+\.\d{4}$", text, re.M) and re.search(r"^grad ", text, re.M)
    assert not re.search(r"\bn\d+(_op)?\b", text)
    page.keyboard.press("Enter")
    inspector = page.locator("#panel-graph .graph-inspector")
    page.wait_for_function(
        f"document.querySelector('#panel-graph .graph-inspector').dataset.node === '{weight}'",
        timeout=TIMEOUT,
    )
    assert "L1.N2.w3.grad = " in inspector.inner_text()
    # Tab moves to another node, whose tip follows; arrow keys pan the view.
    page.keyboard.press("Tab")
    page.wait_for_function(
        f"document.activeElement?.dataset?.node && document.activeElement.dataset.node !== "
        f"'{weight}'",
        timeout=TIMEOUT,
    )
    assert tip.inner_text().splitlines()[0] != "L1.N2.w3"
    before = page.evaluate(MATRIX)
    page.keyboard.press("ArrowLeft")
    assert _moved(page, before)[1] == pytest.approx(before[1] + 60)


def _node_index(page: Any, label: str) -> str:
    return page.evaluate(
        """(label) => [...document.querySelectorAll('#panel-graph g.node[data-node]')]
            .find((g) => g.getAttribute('aria-label')?.startsWith(label + ', ')).dataset.node""",
        label,
    )


def _open(dashboard: Server, page: Any, preset: str) -> str:
    rid = dashboard.create(preset)["id"]
    dashboard.wait_for(rid, lambda r: r["state"] == "paused")
    page.goto(f"{dashboard.url}/runs/{rid}")
    n = len(ARTICLE[preset])
    page.wait_for_function(f"{GRAPH}.dataset.shown === '{n}'", timeout=TIMEOUT)
    return rid


def _inspect_every_node(page: Any, preset: str) -> None:
    """Click the issue's nodes: data and grad are the article's, the nudge agrees, and one
    node's rule reads as the article writes it (n.grad = o.grad x (1 - o^2))."""
    inspector = page.locator("#panel-graph .graph-inspector")
    for k, label in enumerate(INSPECTED[preset]):
        data, grad = ARTICLE[preset][label]
        i = _node_index(page, label)
        page.locator(f"#panel-graph g.node[data-node='{i}']:not([data-part])").click()
        page.wait_for_function(
            f"""() => {{ const b = document.querySelector('#panel-graph .graph-inspector');
                return b.dataset.node === '{i}' && b.querySelector('[data-agree]'); }}""",
            timeout=TIMEOUT,
        )
        if k == 0:  # the inspector narrows the view: fit, so every node can be clicked
            page.locator("#panel-graph").get_by_role("button", name="Fit").click()
            _next_frame(page)
        text = inspector.inner_text()
        assert f"data {data:.4f} · grad {grad:.4f}" in text, text
        slope = float(re.search(r"/ 2h = (-?[\d.]+) vs", text).group(1))
        assert abs(slope - grad) <= 1e-4 and "✓ agrees" in text, text
        if label == RULES[preset][0]:
            assert RULES[preset][1] in text


def test_the_inspector_shows_the_expressions_numbers(dashboard: Server, page: Any) -> None:
    rid = _open(dashboard, page, "micrograd-expression")
    try:
        _inspect_every_node(page, "micrograd-expression")
    finally:
        dashboard.request("POST", f"/api/runs/{rid}/stop")


def test_the_stepper_and_inspector_on_the_neuron(dashboard: Server, page: Any) -> None:
    rid = _open(dashboard, page, "micrograd-neuron")
    try:
        walk = dashboard.request("GET", f"/api/runs/{rid}/graph/backprop").json()
        order = [str(s["node"]) for s in walk["backward"]]
        n = len(order)
        panel = page.locator("#panel-graph")
        page.locator("#panel-graph").get_by_role("button", name="Step through backprop").click()
        page.wait_for_function(f"{GRAPH}.dataset.stepper === 'forward'", timeout=TIMEOUT)
        step = page.locator("#panel-graph").get_by_role("button", name="Step ▶")
        for _ in range(n):
            step.click()
        assert panel.get_attribute("data-stepper-pos") == str(n)
        history = [page.evaluate(GRADS)]
        for k in range(1, n + 1):
            step.click()
            now = page.evaluate(STEPPED)
            grads = now["grads"]
            known = {i for i, t in grads.items() if t != "grad ?"}
            assert now["phase"] == "backward" and known == set(order[:k]), (k, grads)
            # The current node and its edges to the nodes that consume it are highlighted.
            terms = walk["backward"][k - 1]["terms"]
            assert now["current"] == [order[k - 1]] and now["edges"] == len(terms)
            if k == 5:
                page.screenshot(path=str(ARTIFACTS / "graph_stepper_mid_backward.png"))
            history.append(grads)
        # The end is backward()'s grads: the article's numbers.
        labels = {walk["names"][int(i)].strip("()"): t for i, t in history[-1].items()}
        assert labels == {k: f"grad {g:.4f}" for k, (_, g) in ARTICLE["micrograd-neuron"].items()}
        # Back, step by step, restores each state before.
        back = page.locator("#panel-graph").get_by_role("button", name="◀ Back")
        for k in range(n, 0, -1):
            back.click()
            assert page.evaluate(GRADS) == history[k - 1]
        page.locator("#panel-graph").get_by_role("button", name="Done").click()
        assert panel.get_attribute("data-stepper") == "off"
        assert "grad ?" not in page.evaluate(GRADS).values()
        # Out of the stepper, the inspector explains every node of the neuron.
        _inspect_every_node(page, "micrograd-neuron")
    finally:
        dashboard.request("POST", f"/api/runs/{rid}/stop")
