"""The new-run form without its traps, in a real browser against a real server: a cleared
"Hidden layers" means none, steps and epochs never both count, lr = 0 is refused on the page,
the output the server may ask for is offered, a double-click makes one run, the run page shows
its settings and clones them back into the form, and no page scrolls sideways at 390 px."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Server

TIMEOUT = 30_000  # ms


def open_form(page: Any, server: Server, query: str = "") -> None:
    page.goto(f"{server.url}/{query}")
    page.wait_for_selector("#new-run[data-ready=true]", timeout=TIMEOUT)


def submitted(page: Any, server: Server, action: Any) -> dict[str, Any]:
    """The POST /api/runs body the page sends when `action` runs (the run is created)."""
    with page.expect_request(
        lambda r: r.url.endswith("/api/runs") and r.method == "POST", timeout=TIMEOUT
    ) as req:
        action()
    page.wait_for_url("**/runs/*", timeout=TIMEOUT)
    return req.value.post_data_json


def created(server: Server, body: dict[str, Any], page: Any) -> dict[str, Any]:
    """The run the page went to, as the server stored it."""
    return server.run(page.url.rsplit("/", 1)[1])


def test_cleared_hidden_layers_train_no_hidden_layer(dashboard: Server, page: Any) -> None:
    open_form(page, dashboard)
    page.select_option("#preset", "moons")
    assert page.input_value("[name='model.hidden']") == "16,16"
    page.fill("[name='model.hidden']", "")
    body = submitted(page, dashboard, lambda: page.click("#new-run button[type=submit]"))
    assert body["config"]["model"]["hidden"] == []
    run = created(dashboard, body, page)
    assert run["config"]["model"]["hidden"] == []
    dashboard.request("POST", f"/api/runs/{run['id']}/stop")


def test_steps_and_epochs_are_one_or_the_other(dashboard: Server, page: Any) -> None:
    open_form(page, dashboard)
    page.select_option("#preset", "mnist-mlp")  # a preset that sets epochs
    assert page.input_value("[name=epochs]") != "" and page.input_value("[name=steps]") == ""
    page.fill("[name=steps]", "3")
    assert page.input_value("[name=epochs]") == ""  # filling one cleared the other
    body = submitted(page, dashboard, lambda: page.click("#new-run button[type=submit]"))
    assert body["config"]["steps"] == 3 and body["config"]["epochs"] is None
    run = created(dashboard, body, page)
    assert run["total_steps"] == 3 and run["config"]["epochs"] is None
    page.go_back()
    page.wait_for_selector("#new-run[data-ready=true]", timeout=TIMEOUT)
    page.fill("[name=epochs]", "2")
    assert page.input_value("[name=steps]") == ""


def test_a_zero_learning_rate_is_refused_on_the_page(dashboard: Server, page: Any) -> None:
    open_form(page, dashboard)
    page.fill("[name='optimizer.lr']", "0")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.click("#new-run button[type=submit]")
    message = page.eval_on_selector("[name='optimizer.lr']", "e => e.validationMessage")
    assert "greater than 0" in message
    page.wait_for_timeout(300)
    assert posts == [] and page.url.rstrip("/") == dashboard.url


def test_the_output_the_server_asks_for_is_in_the_form(dashboard: Server, page: Any) -> None:
    page.allowed_errors = ("422",)  # the refused create, logged by the browser
    open_form(page, dashboard)
    page.select_option("#preset", "moons")
    page.select_option("[name='model.output']", "tanh")  # cross-entropy takes logits
    page.click("#new-run button[type=submit]")
    error = page.locator("#form-error")
    page.wait_for_function(
        "document.querySelector('#form-error').textContent !== ''", timeout=TIMEOUT
    )
    assert "output" in error.inner_text()
    page.select_option("[name='model.output']", "linear")  # the fix is one the form offers
    body = submitted(page, dashboard, lambda: page.click("#new-run button[type=submit]"))
    assert body["preset"] == "moons"
    dashboard.request("POST", f"/api/runs/{page.url.rsplit('/', 1)[1]}/stop")


def test_a_double_click_on_a_featured_card_makes_one_run(dashboard: Server, page: Any) -> None:
    before = len(dashboard.request("GET", "/api/runs").json()["runs"])
    open_form(page, dashboard)
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and "/api/runs" in r.url else None,
    )
    page.dblclick("button.feature >> nth=0")
    page.wait_for_url("**/runs/*", timeout=TIMEOUT)
    assert len(posts) == 1
    runs = dashboard.request("GET", "/api/runs").json()["runs"]
    assert len(runs) == before + 1
    dashboard.request("POST", f"/api/runs/{runs[0]['id']}/stop")


def test_the_run_page_shows_its_settings_and_clones_them(dashboard: Server, page: Any) -> None:
    run = dashboard.create("moons", steps=50, model={"hidden": [8, 4]}, optimizer={"lr": 0.05})
    dashboard.wait_for(run["id"], lambda r: r["state"] == "finished")
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.click("#settings summary")
    rows = dict(
        page.eval_on_selector_all(
            "#settings dl div",
            "l => l.map(d => [d.children[0].textContent, d.children[1].textContent])",
        )
    )
    assert rows["model.hidden"] == "8, 4" and rows["optimizer.lr"] == "0.05"
    assert rows["steps"] == "50" and rows["dataset.name"] == "moons"
    page.click("#clone")
    page.wait_for_selector("#new-run[data-ready=true]", timeout=TIMEOUT)
    page.wait_for_function(
        "document.querySelector('#form-note').textContent.startsWith('Cloned')", timeout=TIMEOUT
    )
    assert page.input_value("[name='model.hidden']") == "8,4"
    assert page.input_value("[name='optimizer.lr']") == "0.05"
    page.fill("[name=seed]", "7")
    body = submitted(page, dashboard, lambda: page.click("#new-run button[type=submit]"))
    clone = created(dashboard, body, page)
    # The clone is the run's config with the one change: everything else came along.
    expected = {**run["config"], "seed": 7}
    assert clone["config"] == expected
    dashboard.request("POST", f"/api/runs/{clone['id']}/stop")


@pytest.mark.parametrize("width", [390, 1024])
def test_no_page_scrolls_sideways(dashboard: Server, page: Any, width: int) -> None:
    run = dashboard.create("moons", steps=30)
    dashboard.wait_for(run["id"], lambda r: r["state"] == "finished")
    page.set_viewport_size({"width": width, "height": 844})
    for path in ("/", f"/runs/{run['id']}", f"/compare?runs={run['id']},{run['id']}", "/draw"):
        page.goto(dashboard.url + path)
        page.wait_for_load_state("networkidle", timeout=TIMEOUT)
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > innerWidth + 1
                && getComputedStyle(e).position !== 'fixed')
            .slice(0, 5).map((e) => `${e.tagName}#${e.id}.${e.className}`)""")
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, (path, scroll, wide)
