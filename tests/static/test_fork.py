""" "Fork here" on the run page's timeline, in a real browser against a real server: scrubbed
to a frame, with a new learning rate, it starts the fork at that frame's step and opens it,
which shows where it came from and its parent's history up to there."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.server.conftest import Server
from tests.static.test_timeline import TIMEOUT, open_run, scrub


def test_fork_here_starts_the_fork_at_the_frame_and_opens_it(dashboard: Server, page: Any) -> None:
    pid = dashboard.create("moons", steps=40, record={"every": 5})["id"]
    dashboard.wait_for(pid, lambda r: r["state"] == "finished")
    open_run(page, dashboard, pid)
    assert page.locator("#lineage").count() == 0  # no fork: no lineage
    scrub(page, 22)  # the frame shown is the one at or before it
    at = dashboard.request("GET", f"/api/runs/{pid}/frame?at=22").json()["step"]
    assert 10 < at < 22
    fork = page.locator("#fork")
    expect(fork).to_have_attribute("data-step", str(at), timeout=TIMEOUT)
    expect(fork).to_have_text(f"Fork at step {at}")
    page.locator("#fork-lr").fill("0.05")
    fork.click()
    page.wait_for_url(re.compile(r"/runs/(?!" + pid + r")[0-9a-f]{12}$"), timeout=TIMEOUT)
    child = page.url.rsplit("/", 1)[1]
    run = dashboard.run(child)
    assert (run["parent_id"], run["fork_step"]) == (pid, at)
    assert run["config"]["optimizer"]["lr"] == 0.05
    lineage = page.locator("#lineage")
    expect(lineage).to_contain_text("Forked from")
    expect(page.locator("#fork-step")).to_have_text(str(at))
    assert page.locator("#parent-link").get_attribute("href") == f"/runs/{pid}"
    # The fork's page opens with the shared history: its loss chart starts at step 1.
    page.wait_for_function(
        "document.querySelector('#conn-status').textContent === 'live'", timeout=TIMEOUT
    )
    history = dashboard.request("GET", f"/api/runs/{child}/history?names=train_loss").json()
    assert history["series"]["train_loss"]["step"][0] == 1
    # A learning rate the server refuses: the page says why, and stays.
    page.allowed_errors = ("status of 422",)  # the browser logs the refused request
    page.locator("#fork-lr").fill("0")
    page.locator("#fork").click()
    expect(page.locator("#fork-error")).to_contain_text("optimizer.lr", timeout=TIMEOUT)
    assert page.url.endswith(child)
