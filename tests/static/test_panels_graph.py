"""The computation graph panel in a real browser: big graphs collapse to one box per layer,
a click expands a layer into its nodes and collapses it again; values update in place."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from tests.server.conftest import Server

TIMEOUT = 90_000  # ms
GRAPH = "document.querySelector('#panel-graph')"

# What the SVG shows: layer boxes (name, expanded) from left to right, value nodes, op
# nodes, edges (a box's id "grpK" read as its group's name). viz's <title>s (internal ids
# like "n2_op", which the browser would show on hover) are gone: data attributes say it.
SHOWN = """() => {
    const svg = document.querySelector('#panel-graph svg');
    const boxes = [...svg.querySelectorAll('g.node[data-group]')];
    const names = new Map(boxes.map(g => [`grp${g.dataset.groupIndex}`, g.dataset.group]));
    const x = (g) => g.getBoundingClientRect().x;
    const values = [...svg.querySelectorAll('g.node[data-node]:not([data-part])')];
    return {
        boxes: boxes.sort((a, b) => x(a) - x(b))
            .map(g => [g.dataset.group, g.dataset.expanded === 'true']),
        values: values.length,
        ids: values.map(g => Number(g.dataset.node)),
        ops: svg.querySelectorAll('g.node[data-part=op]').length,
        titles: svg.querySelectorAll('title').length,
        edges: [...svg.querySelectorAll('g.edge[data-edge]')]
            .map(g => g.dataset.edge.replace(/grp\\d+/g, (id) => names.get(id))),
    };
}"""


def _box(page: Any, name: str) -> Any:
    return page.locator(f"#panel-graph g.node[data-group='{name}']")


def _box_text(page: Any, name: str) -> list[str]:
    return _box(page, name).locator("text").all_text_contents()


def _wait_shown(page: Any, shown: int, expanded: int) -> None:
    page.wait_for_function(
        f"{GRAPH}.dataset.shown === '{shown}' && {GRAPH}.dataset.expanded === '{expanded}'",
        timeout=TIMEOUT,
    )


def test_micrograd_graph_collapses_to_layers_and_expands(dashboard: Server, page: Any) -> None:
    run = dashboard.create("micrograd-classifier")
    rid = run["id"]
    page.goto(f"{dashboard.url}/runs/{rid}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    graph = dashboard.request("GET", f"/api/runs/{rid}/snapshots/graph").json()["data"]
    nodes = graph["nodes"]
    sizes = Counter(n["group"] for n in nodes)
    assert sizes == {"L0": 176, "L1": 164, "L2": 41, "loss": 17}
    _wait_shown(page, 0, 0)
    panel = page.locator("#panel-graph")
    assert panel.get_attribute("data-nodes") == "398"
    assert panel.get_attribute("data-groups") == "4"

    # Collapsed: one box per layer, no value nodes, the layers chained left to right.
    shown = page.evaluate(SHOWN)
    assert shown["boxes"] == [["L0", False], ["L1", False], ["L2", False], ["loss", False]]
    assert shown["values"] == 0 and shown["ops"] == 0 and shown["titles"] == 0
    assert sorted(shown["edges"]) == ["L0->L1", "L1->L2", "L2->loss"]
    assert "176 values · 16 params" in _box_text(page, "L0")

    # The boxes show the latest values: the loss, and each layer's gradient norm.
    page.wait_for_function(f"{GRAPH}.dataset.step === '{run['total_steps']}'", timeout=TIMEOUT)
    latest = dashboard.request("GET", f"/api/runs/{rid}/snapshots/graph_values").json()
    assert latest["step"] == run["total_steps"]
    values = latest["data"]
    assert f"data {values['data'][graph['root']]:.4f}" in _box_text(page, "loss")
    l2 = [i for i, n in enumerate(nodes) if n["group"] == "L2" and n["label"]]
    assert len(l2) == 5
    norm = math.sqrt(sum(values["grad"][i] ** 2 for i in l2))
    assert f"‖grad‖ {norm:.4f}" in _box_text(page, "L2")

    # Click layer 1: its 164 nodes (and their op nodes) appear, with the latest values.
    _box(page, "L1").click()
    _wait_shown(page, 164, 1)
    shown = page.evaluate(SHOWN)
    assert shown["values"] == 164
    assert shown["ops"] == sum(1 for n in nodes if n["group"] == "L1" and n["op"])
    assert shown["boxes"] == [["L0", False], ["L1", True], ["L2", False], ["loss", False]]
    # Edges now run from the L0 box into L1's product nodes and out of L1's tanh nodes.
    assert any(e.startswith("L0->n") and e.endswith("_op") for e in shown["edges"])
    assert any(e.startswith("n") and e.endswith("->L2") for e in shown["edges"])
    weight = next(i for i, n in enumerate(nodes) if n["label"] == "L1.N2.w3")
    texts = page.locator(f"#panel-graph g.node[data-node='{weight}']:not([data-part]) text")
    assert f"data {values['data'][weight]:.4f}" in texts.all_text_contents()
    assert f"grad {values['grad'][weight]:.4f}" in texts.all_text_contents()

    # Click its header: collapsed again.
    _box(page, "L1").click()
    _wait_shown(page, 0, 0)
    assert page.evaluate(SHOWN)["boxes"] == [[g, False] for g in ("L0", "L1", "L2", "loss")]

    # Expand all: the article's whole graph, every value and op node.
    page.get_by_role("button", name="Expand all").click()
    _wait_shown(page, 398, 4)
    shown = page.evaluate(SHOWN)
    assert shown["values"] == 398 and shown["ops"] == sum(1 for n in nodes if n["op"])
    page.get_by_role("button", name="Collapse all").click()
    _wait_shown(page, 0, 0)


def test_keyboard_expands_a_layer(dashboard: Server, page: Any) -> None:
    run = dashboard.create("micrograd-classifier", steps=5)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    _wait_shown(page, 0, 0)
    _box(page, "L2").focus()
    page.keyboard.press("Enter")
    _wait_shown(page, 41, 1)


def test_a_small_graph_stays_expanded(dashboard: Server, page: Any) -> None:
    run = dashboard.create("napkin-average", steps=20)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    graph = dashboard.request("GET", f"/api/runs/{run['id']}/snapshots/graph").json()["data"]
    n = len(graph["nodes"])
    assert n <= 60  # the neuron over sample 0
    page.wait_for_function(f"{GRAPH}.dataset.shown === '{n}'", timeout=TIMEOUT)
    assert page.locator("#panel-graph").get_attribute("data-groups") == "0"
    shown = page.evaluate(SHOWN)
    assert shown["boxes"] == [] and shown["values"] == n
    assert page.get_by_role("button", name="Expand all").count() == 0


def test_a_deep_tensor_graph_collapses_by_module(dashboard: Server, page: Any) -> None:
    # 16 hidden layers: 69 tensor nodes, one group per Linear (with its activation).
    run = dashboard.create("moons", model={"hidden": [4] * 16}, steps=20)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    graph = dashboard.request("GET", f"/api/runs/{run['id']}/snapshots/graph").json()["data"]
    assert len(graph["nodes"]) > 60
    _wait_shown(page, 0, 0)
    names = [str(2 * i) for i in range(17)] + ["loss"]
    assert [b[0] for b in page.evaluate(SHOWN)["boxes"]] == names
    _box(page, "4").click()
    _wait_shown(page, 4, 1)
    shown = {
        graph["nodes"][i]["label"] or graph["nodes"][i]["op"] for i in page.evaluate(SHOWN)["ids"]
    }
    assert shown == {"4.weight", "4.bias", "linear", "relu"}


# The real GraphPanel fed a made-up 70-node chain whose records say what no field of the node
# does, in groups the event alone names: the panel draws the server's records and groups.
FROM_THE_EVENT = """async () => {
    const { default: GraphPanel } = await import('/static/js/panels/graph.js');
    const el = document.createElement('section');
    el.innerHTML = '<div class="panel-body"></div>';
    document.querySelector('main').append(el);
    const p = new GraphPanel(el);
    const n = 70;
    const nodes = Array.from({ length: n }, (_, i) => ({
        id: i, label: `v${i}`, op: i ? 'tanh' : '', group: 'ignored', data: i, grad: 0,
        record: `{ from the server ${i} | data ${i}.0000 | grad 0.0000 }` }));
    const edges = nodes.slice(1).map((v) => [v.id - 1, v.id]);
    const half = [...Array(35).keys()];
    const groups = [{ name: 'first', nodes: half, params: [0] },
                    { name: 'second', nodes: half.map((i) => i + 35), params: [] }];
    p.add({ type: 'graph', step: 0, data: { kind: 'scalar', root: n - 1, nodes, edges, groups,
        dot: 'digraph G {}' } });
    await p.render();
    const boxes = [...el.querySelectorAll('g.node[data-group]')].map((g) => g.dataset.group);
    p.expanded = new Set([0, 1]);
    await p.render();
    const texts = [...el.querySelectorAll('g.node text')].map((t) => t.textContent);
    return { boxes, shown: el.dataset.shown, texts };
}"""


def test_records_and_groups_come_from_the_event(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/")
    out = page.evaluate(FROM_THE_EVENT)
    assert out["boxes"] == ["first", "second"]
    assert out["shown"] == "70"
    assert {f"from the server {i}" for i in range(70)} <= set(out["texts"])
    assert not any(t.startswith("v") for t in out["texts"])  # no record rebuilt from labels
