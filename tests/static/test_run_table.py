"""The home page's run table in Chromium: its columns from each run's record, sorting,
filtering, selecting runs to compare, renaming and tagging, and a phone's width."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Server
from tests.static.test_compare import write_run

TIMEOUT = 60_000  # ms
WIDE = """() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
    .slice(0, 5).map((e) => `${e.tagName}#${e.id}.${e.className}`)"""


@pytest.fixture(scope="module")
def runs(dashboard: Server) -> list[dict[str, Any]]:
    """Three finished runs (written as `gradscope train` writes them): two tagged learning
    rates, and an untagged run of another batch size."""
    made = [
        write_run(dashboard, 40, lr=0.05, seed=1),
        write_run(dashboard, 40, lr=0.3, seed=2),
        write_run(dashboard, 40, seed=3, batch_size=16),
    ]
    for rid, tags in zip(made, (["sweep", "slow"], ["sweep"], []), strict=True):
        patched = dashboard.request("PATCH", f"/api/runs/{rid}", json={"tags": tags})
        assert patched.status_code == 200, patched.text
    return [dashboard.run(rid) for rid in made]


def shown_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#run-list tbody tr[data-run-id]", "rows => rows.map((r) => r.dataset.runId)"
    )


def open_table(page: Any, dashboard: Server, count: int) -> None:
    page.goto(dashboard.url + "/")
    page.wait_for_function(
        f"document.querySelectorAll('#run-list tbody tr[data-run-id]').length === {count}",
        timeout=TIMEOUT,
    )


def test_columns_sort_filter_and_select_to_compare(
    dashboard: Server, page: Any, runs: list[dict[str, Any]]
) -> None:
    open_table(page, dashboard, 3)
    slow, fast, other = runs
    row = page.locator(f"#run-list tr[data-run-id='{slow['id']}']")
    summary = slow["summary"]
    assert float(row.locator("td[data-col=loss]").inner_text()) == pytest.approx(
        summary["train_loss"]["final"], rel=1e-3
    )
    best = row.locator("td[data-col=best_acc]").inner_text()
    assert float(best.rstrip("%")) == pytest.approx(100 * summary["test_acc"]["best"], abs=0.01)
    assert row.locator("td[data-col=tags]").inner_text().split() == ["sweep", "slow"]
    assert "finished" in row.locator("td[data-col=state]").inner_text()
    config = row.locator("td[data-col=config]").inner_text()
    assert "lr=0.05" in config and "engine=" not in config  # only what differs
    other_row = page.locator(f"#run-list tr[data-run-id='{other['id']}']")
    assert "batch_size=16" in other_row.locator("td[data-col=config]").inner_text()
    # Sort by final loss, one way then the other (the server's figures decide the order).
    by_loss = sorted(runs, key=lambda r: r["summary"]["train_loss"]["final"])
    page.click("#run-list th[data-col=loss] button")
    assert page.get_attribute("#run-list", "data-sort") == "loss:desc"
    assert shown_ids(page) == [r["id"] for r in reversed(by_loss)]
    page.click("#run-list th[data-col=loss] button")
    assert shown_ids(page) == [r["id"] for r in by_loss]
    # Filter: a tag, then a config value; the differences shrink to the runs shown.
    page.fill("#run-filter", "#sweep")
    page.wait_for_function("document.querySelector('#run-list').dataset.shown === '2'")
    assert set(shown_ids(page)) == {slow["id"], fast["id"]}
    assert "batch_size" not in page.locator("#run-list tbody").inner_text()
    page.fill("#run-filter", "lr=0.3")
    page.wait_for_function("document.querySelector('#run-list').dataset.shown === '1'")
    assert shown_ids(page) == [fast["id"]]
    # Select every run shown (the filter's), and compare them.
    page.fill("#run-filter", "#sweep")
    page.wait_for_function("document.querySelector('#run-list').dataset.shown === '2'")
    page.check("#run-list thead input[type=checkbox]")
    assert page.is_enabled("#compare-button")
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url("**/compare?runs=*")
    compared = (
        page.url.split("runs=", 1)[1].split("&")[0].split("%2C" if "%2C" in page.url else ",")
    )
    assert set(compared) == {slow["id"], fast["id"]}


def test_rename_and_tag_a_run_from_the_table(
    dashboard: Server, page: Any, runs: list[dict[str, Any]]
) -> None:
    page.allowed_errors = ("status of 422",)  # the refused tag, on purpose
    open_table(page, dashboard, 3)
    rid = runs[2]["id"]
    page.click(f"#run-list tr[data-run-id='{rid}'] button.edit")
    page.fill("#run-list form.edit-run [name=tags]", "t" * 41)
    page.click("#run-list form.edit-run button[type=submit]")
    page.wait_for_function(
        "document.querySelector('.edit-run .form-error').textContent.includes('tags.0')"
    )
    page.fill("#run-list form.edit-run [name=name]", "moons baseline")
    page.fill("#run-list form.edit-run [name=tags]", "baseline, moons")
    page.click("#run-list form.edit-run button[type=submit]")
    cell = f"#run-list tr[data-run-id='{rid}'] td[data-col=name]"
    page.wait_for_function(
        f"document.querySelector(\"{cell}\")?.textContent.includes('moons baseline')"
    )
    run = dashboard.run(rid)
    assert run["name"] == "moons baseline" and run["tags"] == ["baseline", "moons"]
    # A tag's chip filters the table to its runs.
    page.click(f"#run-list tr[data-run-id='{rid}'] button.tag >> text=baseline")
    page.wait_for_function("document.querySelector('#run-list').dataset.shown === '1'")
    assert page.input_value("#run-filter") == "#baseline"


def test_the_table_fits_a_phone(dashboard: Server, page: Any, runs: list[dict[str, Any]]) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_table(page, dashboard, 3)
    assert page.evaluate(WIDE) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
