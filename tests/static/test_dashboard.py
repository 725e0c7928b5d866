"""The dashboard in a real browser: featured presets, live panels, controls, reconnects."""

from __future__ import annotations

import time
from typing import Any

from gradscope.engine.examples import TinyClassifier
from gradscope.engine.graph import to_dict
from tests.server.conftest import Server

TIMEOUT = 90_000  # ms


def _start_featured(page: Any, server: Server, title: str) -> str:
    """Start a featured preset from its button; then full speed (it is paced for watching)."""
    page.goto(server.url + "/")
    page.get_by_role("button", name=title).click()
    page.wait_for_url("**/runs/*")
    run_id = page.url.rsplit("/", 1)[1]
    r = server.request("PATCH", f"/api/runs/{run_id}", json={"pace": None})
    assert r.status_code in (200, 409), r.text  # 409: it finished already
    return run_id


def _state(page: Any) -> str:
    return page.locator("#state-badge").inner_text()


def test_napkin_from_the_page(dashboard: Server, page: Any) -> None:
    run_id = _start_featured(page, dashboard, "Napkin")
    loss = page.locator("#panel-loss")
    page.wait_for_function(
        "Number(document.querySelector('#panel-loss').dataset.points) > 0", timeout=TIMEOUT
    )
    first = int(loss.get_attribute("data-points"))
    page.wait_for_function(
        f"Number(document.querySelector('#panel-loss').dataset.points) > {first}", timeout=TIMEOUT
    )
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    page.wait_for_function("Number(document.querySelector('#panel-loss').dataset.points) === 300")
    weights = page.locator("td[data-weight]")
    assert weights.count() == 4
    for i in range(4):
        assert abs(float(weights.nth(i).inner_text()) - 0.25) < 0.01
    # The graph panel: every value box shows its label, data and grad.
    page.wait_for_selector("#panel-graph svg g.node")
    boxes = page.evaluate("""() => [...document.querySelectorAll(
        '#panel-graph g.node[data-node]:not([data-part])')]
        .map(g => [...g.querySelectorAll('text')].map(t => t.textContent))""")
    assert boxes and all(any(t.startswith("data ") for t in b) for b in boxes)
    assert all(any(t.startswith("grad ") for t in b) for b in boxes)
    labels = {t for b in boxes for t in b}
    assert {"w0", "w1", "w2", "w3"} <= labels
    # The network diagram: one neuron, four input edges, all positive (orange) by the end.
    network = page.locator("#panel-network")
    assert network.get_attribute("data-edges") == "4"
    assert network.get_attribute("data-step") == "300"
    assert dashboard.run(run_id)["state"] == "finished"


def test_micrograd_graph_matches_the_article(dashboard: Server, page: Any) -> None:
    run_id = _start_featured(page, dashboard, "micrograd")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    page.wait_for_selector("#panel-graph svg g.node")
    # 398 values are drawn one box per layer: expand them all to count the article's nodes.
    page.get_by_role("button", name="Expand all").click()
    page.wait_for_function("document.querySelector('#panel-graph').dataset.shown === '398'")
    example = TinyClassifier()
    graph = to_dict(example.loss())
    values = len(graph["nodes"])
    ops = sum(1 for n in graph["nodes"] if n["op"])
    counts = page.evaluate("""() => [
        document.querySelectorAll('#panel-graph g.node[data-node]:not([data-part])').length,
        document.querySelectorAll('#panel-graph g.node[data-part=op]').length]""")
    assert counts == [values, ops]
    metrics = dashboard.request(
        "GET", f"/api/runs/{run_id}/metrics", params={"names": "train_loss"}
    ).json()
    assert metrics["series"]["train_loss"]["value"][-1] < 0.01


def test_moons_boundary_changes_and_classifies(dashboard: Server, page: Any) -> None:
    run = dashboard.create("moons", steps=3000, record={"every": 100})
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    panel = page.locator("#panel-boundary")
    assert int(panel.get_attribute("data-step")) == 3000
    assert float(panel.get_attribute("data-classified")) >= 0.9
    confusion = page.locator("#panel-confusion")
    total = int(confusion.get_attribute("data-total"))
    assert total == 400 and int(confusion.get_attribute("data-correct")) >= 0.9 * total
    # 2 -> 16 -> 16 -> 2: every edge of the network diagram is drawn.
    assert page.locator("#panel-network").get_attribute("data-edges") == str(
        2 * 16 + 16 * 16 + 16 * 2
    )
    # Replayed from the start, the boundary is drawn step by step: check that it changed.
    early = dashboard.request(
        "GET", f"/api/runs/{run['id']}/snapshots/boundary", params={"at": 100}
    ).json()
    late = dashboard.request("GET", f"/api/runs/{run['id']}/snapshots/boundary").json()
    assert early["data"]["values"] != late["data"]["values"]


def test_pause_step_resume_from_the_page(dashboard: Server, page: Any) -> None:
    run = dashboard.create("moons", steps=1_000_000)
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "Number(document.querySelector('#step-counter').textContent) > 100", timeout=TIMEOUT
    )
    page.get_by_role("button", name="Pause").click()
    page.wait_for_function("document.querySelector('#state-badge').textContent === 'paused'")
    time.sleep(0.3)
    frozen = page.locator("#step-counter").inner_text()
    points = page.locator("#panel-loss").get_attribute("data-points")
    time.sleep(0.7)
    assert page.locator("#step-counter").inner_text() == frozen
    assert page.locator("#panel-loss").get_attribute("data-points") == points
    page.get_by_role("button", name="Step 10", exact=True).click()
    page.wait_for_function(
        f"document.querySelector('#step-counter').textContent === '{int(frozen) + 10}'"
    )
    assert dashboard.run(run["id"])["step"] == int(frozen) + 10
    page.get_by_role("button", name="Resume").click()
    page.wait_for_function(
        f"Number(document.querySelector('#step-counter').textContent) > {int(frozen) + 60}",
        timeout=TIMEOUT,
    )
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("document.querySelector('#state-badge').textContent === 'stopped'")


def test_reconnect_resumes_without_a_gap(dashboard: Server, page: Any) -> None:
    page.allowed_errors = ("WebSocket connection to",)  # the server is down on purpose
    # Started paused and resumed once the page is live: the page sees every event itself.
    run = dashboard.create("moons", steps=20_000, start_paused=True)
    rid = run["id"]
    page.goto(f"{dashboard.url}/runs/{rid}")
    page.wait_for_function("document.querySelector('#state-badge').textContent === 'paused'")
    assert dashboard.request("POST", f"/api/runs/{rid}/resume").status_code == 200
    page.wait_for_function(
        "Number(document.querySelector('#step-counter').textContent) > 500", timeout=TIMEOUT
    )
    dashboard.kill()  # every websocket is cut from the server side
    page.wait_for_function(
        "document.querySelector('#conn-status').textContent.includes('reconnecting')"
    )
    dashboard.start(same_port=True)
    assert dashboard.request("POST", f"/api/runs/{rid}/resume").status_code == 200
    page.wait_for_function(
        "document.querySelector('#conn-status').textContent === 'live'", timeout=TIMEOUT
    )
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    page.wait_for_function(
        "Number(document.querySelector('#panel-loss').dataset.points) === 20000", timeout=TIMEOUT
    )
    metrics = dashboard.request(
        "GET", f"/api/runs/{rid}/metrics", params={"names": "train_loss"}
    ).json()
    assert metrics["series"]["train_loss"]["step"] == list(range(1, 20_001))


def test_index_form_and_live_list(dashboard: Server, page: Any) -> None:
    page.allowed_errors = ("status of 422",)  # Chromium logs the refused config on purpose
    page.goto(dashboard.url + "/")
    page.wait_for_function("document.querySelector('#list-status').textContent === 'live'")
    page.select_option("#preset", "xor")
    page.wait_for_function("document.querySelector('[name=\"dataset.name\"]').value === 'xor'")
    page.fill("[name='model.hidden']", "16,0")  # passes the form, refused by the server
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(
        "document.querySelector('#form-error').textContent.includes('model.hidden')"
    )
    page.fill("[name='model.hidden']", "16,16")
    page.fill("[name='optimizer.lr']", "0.02")
    page.fill("[name='steps']", "200")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/runs/*")
    run_id = page.url.rsplit("/", 1)[1]
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'finished'", timeout=TIMEOUT
    )
    run = dashboard.run(run_id)
    assert run["config"]["optimizer"]["lr"] == 0.02 and run["total_steps"] == 200
    page.goto(dashboard.url + "/")
    page.wait_for_selector(f"tr[data-run-id='{run_id}']")
    assert "finished" in page.locator(f"tr[data-run-id='{run_id}']").inner_text()


def test_compare_two_runs(dashboard: Server, page: Any) -> None:
    a = dashboard.create("xor", steps=300)
    b = dashboard.create("xor", steps=300, optimizer={"name": "sgd", "lr": 0.05})
    for r in (a, b):
        dashboard.wait_for(r["id"], lambda run: run["state"] == "finished")
    page.goto(dashboard.url + "/")
    for r in (a, b):
        page.locator(f"tr[data-run-id='{r['id']}'] input[type=checkbox]").check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url("**/compare?runs=*")
    page.wait_for_selector("#compare[data-ready=true]")
    assert page.locator("#compare-chart canvas").count() >= 1
    for r in (a, b):
        row = page.locator(f"#compare-table tr[data-run-id='{r['id']}']")
        loss = dashboard.request(
            "GET", f"/api/runs/{r['id']}/metrics", params={"names": "train_loss"}
        ).json()
        final = loss["series"]["train_loss"]["value"][-1]
        shown = float(row.locator("[data-final=train_loss]").inner_text())
        assert abs(shown - final) <= 1e-3 * abs(final) + 1e-9
        assert "%" in row.locator("[data-final=test_acc]").inner_text()
    assert "0.05" in page.locator(f"#compare-table tr[data-run-id='{b['id']}']").inner_text()


def test_divergence_banner_names_the_op(dashboard: Server, page: Any) -> None:
    run = dashboard.create("napkin-average", optimizer={"lr": 10.0}, dataset={"n": 50})
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_function(
        "document.querySelector('#state-badge').textContent === 'failed'", timeout=TIMEOUT
    )
    banner = page.locator("#nan-banner")
    assert banner.is_visible()
    record = dashboard.run(run["id"])
    assert record["state"] == "failed" and record["error_op"]
    assert f"op: {record['error_op']}" in banner.inner_text()
    assert "diverged" in banner.inner_text()
