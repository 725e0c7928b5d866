"""Setting a weight by hand in a real browser: click an edge of the network diagram of a paused
run, type its value; the next frame draws it, and every chart marks the edit."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.server.conftest import Server
from tests.static.test_timeline import TIMEOUT, open_run


def test_set_a_weight_from_the_network_diagram(dashboard: Server, page: Any) -> None:
    rid = dashboard.create("xor", steps=200, start_paused=True)["id"]
    dashboard.wait_for(rid, lambda r: r["state"] == "paused")
    open_run(page, dashboard, rid)
    network = page.locator("#panel-network")
    page.wait_for_function(
        "Number(document.querySelector('#panel-network').dataset.edges) > 0", timeout=TIMEOUT
    )
    # A real click lands on whichever edge is on top there and selects it...
    network.locator("line.hit").first.click(force=True)
    form = network.locator("form.weight-edit")
    expect(form).to_be_visible()
    assert network.locator("line.selected").count() == 1
    # ...then the first layer's edge from input 1 into unit 3: 0.weight[3, 1] of the MLP
    # (edges cross: the click goes to it by name).
    network.locator("line.hit[data-l='0'][data-o='3'][data-i='1']").dispatch_event("click")
    expect(form.locator(".which")).to_contain_text("0.weight[3, 1]")
    form.locator("input[name=value]").fill("0.75")
    form.locator("button[type=submit]").click()
    expect(form).to_have_attribute("data-done", "0", timeout=TIMEOUT)
    # The step's frame again, with the new weight: the diagram draws it.
    drawn = network.locator("line:not(.hit)[data-l='0'][data-o='3'][data-i='1']")
    expect(drawn).to_have_attribute("data-w", "0.75", timeout=TIMEOUT)
    edits = dashboard.request("GET", f"/api/runs/{rid}/interventions").json()["interventions"]
    assert [(e["param"], e["index"], e["new"]) for e in edits] == [("0.weight", [3, 1], 0.75)]
    # Training goes on from it; the loss chart marks the edit's step.
    assert dashboard.request("POST", f"/api/runs/{rid}/step", json={"n": 5}).status_code == 200
    chart = page.locator("#panel-loss [data-edits]")
    expect(chart.first).to_have_attribute("data-edits", "0", timeout=TIMEOUT)
    # A reload finds the edit again (from the server, not from this page's memory).
    page.reload()
    page.wait_for_function(
        "document.querySelector('#conn-status').textContent === 'live'", timeout=TIMEOUT
    )
    expect(page.locator("#panel-loss [data-edits='0']").first).to_be_attached(timeout=TIMEOUT)


def maps_of(page: Any) -> list[str]:
    """Every unit map's image (its data URL) in the network diagram, in order."""
    return page.eval_on_selector_all(
        "#panel-network canvas.neuron-map", "l => l.map((c) => c.toDataURL())"
    )


def test_every_unit_shows_its_map_and_the_maps_move(dashboard: Server, page: Any) -> None:
    """Neuron maps (as TensorFlow Playground draws them): one per hidden unit (and output),
    live, changing between two frames of a running paced moons run; a wide layer shows
    the units the server chose and says how many there are."""
    rid = dashboard.create("moons", steps=100_000, pace=30)["id"]
    open_run(page, dashboard, rid)
    page.wait_for_function(
        "Number(document.querySelector('#panel-network').dataset.maps) > 0", timeout=TIMEOUT
    )
    assert page.locator("#panel-network canvas.neuron-map").count() == 16 + 16 + 2
    first, first_step = maps_of(page), page.locator("#panel-network").get_attribute("data-step")
    page.wait_for_function(
        f"document.querySelector('#panel-network').dataset.step > {int(first_step) + 5}",
        timeout=TIMEOUT,
    )
    later = maps_of(page)
    assert all(m.startswith("data:image/png") for m in later) and len(set(later)) > 10
    assert sum(a != b for a, b in zip(first, later, strict=True)) > 10
    # Hovering an edge says its weight.
    page.locator("#panel-network line.hit").first.hover(force=True)
    expect(page.locator("#panel-network .network-tip")).to_contain_text("weight")
    dashboard.request("POST", f"/api/runs/{rid}/stop")
    # A wider network (spiral: 32 units a layer) shows 16 of each, as the caption says.
    wide = dashboard.create("spiral", steps=20)["id"]
    dashboard.wait_for(wide, lambda r: r["state"] == "finished")
    open_run(page, dashboard, wide)
    page.wait_for_function(
        "Number(document.querySelector('#panel-network').dataset.maps) > 0", timeout=TIMEOUT
    )
    assert page.locator("#panel-network canvas.neuron-map").count() == 16 * 3 + 2
    expect(page.locator("#panel-network p.muted").last).to_contain_text("16 of 32")
