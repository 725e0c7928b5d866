"""The Playground's controls in a real browser: a setup shared as a link opens the same form
(some controls hidden for a lesson), a CSV uploaded from the page becomes the data set, a
click on a paused run's boundary adds a training point, and a 2-D run's boundary, network
and loss panels are above the fold at 1440x900."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.server.conftest import Server
from tests.static.test_timeline import TIMEOUT, open_run

# Every named control of the new-run form and the text it holds.
FORM_VALUES = """() => Object.fromEntries([...document.querySelectorAll('#new-run [name]')]
    .map((f) => [f.name, f.value]))"""


def _ready(page: Any, url: str) -> None:
    page.goto(url)
    expect(page.locator("#new-run")).to_have_attribute("data-ready", "true", timeout=TIMEOUT)


def test_a_shared_link_opens_the_same_setup(dashboard: Server, page: Any) -> None:
    _ready(page, f"{dashboard.url}/")
    form = page.locator("#new-run")
    form.locator("select[name=preset]").select_option("moons")
    form.locator("select[name='dataset.name']").select_option("spiral")
    form.locator("input[name='dataset.classes']").fill("3")
    form.locator("input[name='dataset.noise']").fill("0.05")
    form.locator("fieldset.choices input[value='x1^2']").check()
    form.locator("fieldset.choices input[value='sin(x2)']").check()
    form.locator("input[name='model.hidden']").fill("8,8")
    form.locator("select[name='regularization.kind']").select_option("l2")
    form.locator("input[name='regularization.rate']").fill("0.003")
    page.locator("#share summary").click()
    page.locator("#hide-list input[value='optimizer.name']").check()
    made = page.evaluate(FORM_VALUES)
    assert made["dataset.features"] == "x1,x2,x1^2,sin(x2)"
    page.locator("#share-make").click()
    link = page.locator("#share-link").input_value()
    assert link.startswith(dashboard.url) and "hide=optimizer.name" in link
    _ready(page, link)
    assert page.evaluate(FORM_VALUES) == made
    expect(page.locator("fieldset.choices input[value='x1^2']")).to_be_checked()
    expect(page.locator("select[name='optimizer.name']")).to_be_hidden()
    expect(page.locator("select[name='loss']")).to_be_visible()
    # Started, it is the run the form says: the features and the penalty are its config.
    page.locator("#new-run button[type=submit]").click()
    page.wait_for_url("**/runs/*", timeout=TIMEOUT)
    config = dashboard.run(page.url.rsplit("/", 1)[1])["config"]
    assert config["dataset"]["features"] == ["x1", "x2", "x1^2", "sin(x2)"]
    assert config["dataset"]["classes"] == 3 and config["model"]["hidden"] == [8, 8]
    assert config["regularization"] == {"kind": "l2", "rate": 0.003}


def test_upload_a_csv_from_the_page(dashboard: Server, page: Any) -> None:
    page.allowed_errors = ("422 (Unprocessable Entity)",)  # the bad file's, expected
    _ready(page, f"{dashboard.url}/")
    page.locator("#uploads summary").click()
    rows = "\n".join(f"{i / 10},{(i * 7 % 10) / 10},{i % 2}" for i in range(20))
    page.locator("#csv-file").set_input_files(
        files=[
            {
                "name": "dots.csv",
                "mimeType": "text/csv",
                "buffer": f"x1,x2,label\n{rows}\n".encode(),
            }
        ]
    )
    page.locator("#csv-upload").click()
    expect(page.locator("#csv-status")).to_contain_text("20 rows", timeout=TIMEOUT)
    expect(page.locator("#csv-list li")).to_contain_text("dots.csv")
    assert page.locator("select[name='dataset.name']").input_value() == "csv"
    chosen = page.locator("select[name='dataset.id']").input_value()
    assert chosen in [d["id"] for d in dashboard.request("GET", "/api/datasets").json()["datasets"]]
    # A bad file: the server's message, naming row and column, is shown.
    page.locator("#csv-file").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": b"x1,x2,label\n1,x,0\n"}]
    )
    page.locator("#csv-upload").click()
    expect(page.locator("#csv-status")).to_contain_text("row 2, column 2", timeout=TIMEOUT)


def test_a_click_adds_a_point_and_the_panels_are_above_the_fold(
    dashboard: Server, page: Any
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    rid = dashboard.create("moons", steps=100, start_paused=True)["id"]
    dashboard.wait_for(rid, lambda r: r["state"] == "paused")
    open_run(page, dashboard, rid)
    panel = page.locator("#panel-boundary")
    expect(panel).to_have_attribute("data-points", "400", timeout=TIMEOUT)
    for name in ("boundary", "network", "loss"):
        box = page.locator(f"#panel-{name}").bounding_box()
        assert box is not None and box["y"] + min(box["height"], 300) <= 900, (name, box)
    canvas = panel.locator("canvas.boundary-map")
    panel.locator("select.point-class").select_option("1")
    box = canvas.bounding_box()
    assert box is not None
    canvas.click(position={"x": 6, "y": 6})  # the top-left corner: no point there
    expect(panel).to_have_attribute("data-edited", "400", timeout=TIMEOUT)
    expect(panel).to_have_attribute("data-points", "401", timeout=TIMEOUT)
    edits = dashboard.request("GET", f"/api/runs/{rid}/interventions").json()["interventions"]
    assert [(e["what"], e["index"], e["new"]) for e in edits] == [("point", [400], 1.0)]
    x0, x1, y0, y1 = dashboard.request("GET", f"/api/runs/{rid}/snapshots/dataset").json()["data"][
        "bounds"
    ]
    x, y = edits[0]["point"][:2]
    assert abs(x - (x0 + (x1 - x0) * 6 / box["width"])) < 0.05 * (x1 - x0)
    assert abs(y - (y1 - (y1 - y0) * 6 / box["height"])) < 0.05 * (y1 - y0)
    # The CSV export says where the point went.
    csv = dashboard.request("GET", f"/api/runs/{rid}/export", params={"format": "csv"}).text
    assert f"point[400]: added ({x:.6g}, {y:.6g}) label 1" in csv, csv[-300:]
    # Training goes on with it: a step after the edit finishes on the larger set.
    assert dashboard.request("POST", f"/api/runs/{rid}/step", json={"n": 2}).status_code == 200
