"""The run page's transport in a real browser against a real server: play/pause, step 1,
step 10, step to the epoch's end, stop, the speed and "start paused"; the buttons follow the
run's state, every panel shows the run's step when it stops, and a run deleted elsewhere
says so. The timeline's tests are in test_timeline.py."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.server.conftest import Server
from tests.static.test_timeline import TIMEOUT, VISIBLE_STEPS, open_run, start, wait_step

# Which controls can be used now, by name ("step 1", "step 10", "step epoch", "toggle",
# "stop", "delete", "speed", "timeline").
ENABLED = """() => {
    const out = {};
    for (const b of document.querySelectorAll('#controls button[data-action]')) {
        const name = b.dataset.action === 'step' ? `step ${b.dataset.n}` : b.dataset.action;
        out[name] = !b.disabled;
    }
    out.speed = !document.querySelector('#speed').disabled;
    out.timeline = !document.querySelector('#timeline').disabled;
    return out;
}"""
# True when every visible panel depicts step `s` (the loss chart: its newest point).
ALL_AT = """(s) => {
    const shown = [...document.querySelectorAll('[data-panel]')].filter((el) => !el.hidden);
    return shown.length >= 5 && shown.every((el) => el.dataset.step === String(s));
}"""
STEPS = ("step 1", "step 10", "step epoch")


def enabled(page: Any) -> set[str]:
    return {k for k, v in page.evaluate(ENABLED).items() if v}


def all_at(page: Any, step: int, timeout: int = 5_000) -> None:
    try:
        page.wait_for_function(ALL_AT, arg=step, timeout=timeout)
    except Exception as e:  # say which panel lags
        raise AssertionError(f"not all at {step}: {page.evaluate(VISIBLE_STEPS)}") from e


def state(page: Any, name: str) -> None:
    expect(page.locator("#state-badge")).to_have_attribute("data-state", name, timeout=TIMEOUT)


def toggle(page: Any, label: str) -> None:
    button = page.locator("#controls [data-action=toggle]")
    expect(button).to_have_text(label)
    button.click()


def test_pause_and_step_bring_every_panel_to_the_runs_step(dashboard: Server, page: Any) -> None:
    run = start(dashboard, "moons", steps=100_000)  # at the preset's pace
    rid = run["id"]
    open_run(page, dashboard, rid)
    wait_step(page, "boundary", 15)
    assert enabled(page) == {"toggle", "stop", "delete", "speed", "timeline"}
    toggle(page, "❚❚ Pause")
    state(page, "paused")
    step = dashboard.run(rid)["step"]
    all_at(page, step, timeout=1_000)
    assert enabled(page) == {*STEPS, "toggle", "stop", "delete", "speed", "timeline"}
    # Five steps through the API, ten and then the rest of the epoch from the page.
    r = dashboard.request("POST", f"/api/runs/{rid}/step", json={"n": 5})
    assert r.status_code == 200, r.text
    all_at(page, step + 5)
    page.get_by_role("button", name="Step 10", exact=True).click()
    all_at(page, step + 15)
    to_epoch = int(page.locator("[data-n=epoch]").get_attribute("data-steps"))
    spe = 13  # 400 moons in batches of 32
    assert to_epoch == spe - (step + 15) % spe
    page.get_by_role("button", name="Step epoch").click()
    all_at(page, step + 15 + to_epoch)
    assert dashboard.run(rid)["step"] % spe == 0
    page.get_by_role("button", name="Step 1", exact=True).click()
    all_at(page, step + 16 + to_epoch)
    toggle(page, "▶ Resume")
    state(page, "running")
    expect(page.locator("#controls [data-action=toggle]")).to_have_text("❚❚ Pause")
    assert not enabled(page) & set(STEPS)
    page.get_by_role("button", name="Stop").click()
    state(page, "stopped")
    expect(page.locator("#controls [data-action=stop]")).to_be_disabled()
    assert enabled(page) == {"delete", "timeline"}


def test_start_paused_from_the_form_and_the_speed(dashboard: Server, page: Any) -> None:
    page.goto(dashboard.url + "/")
    page.select_option("#preset", "moons")
    page.wait_for_function("document.querySelector('[name=\"dataset.name\"]').value === 'moons'")
    page.check("#start-paused")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/runs/*")
    rid = page.url.rsplit("/", 1)[1]
    state(page, "paused")
    assert dashboard.run(rid)["step"] == 0
    # Paused before its first step: the frame of step 0 (no loss yet).
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-panel]')]
            .filter((el) => !el.hidden && el.dataset.panel !== 'loss')
            .every((el) => el.dataset.step === '0')""",
        timeout=TIMEOUT,
    )
    assert "step 1" in enabled(page)
    # The speed: a log scale from 1 step/s, "max" at the right end; each change is sent.
    speed = page.locator("#speed")
    assert (
        page.locator("#speed-value").inner_text()
        == f"{dashboard.run(rid)['config']['pace']:g} steps/s"
    )
    for position, pace, text in (
        (33, 10.0, "10 steps/s"),
        (0, 1.0, "1 steps/s"),
        (100, None, "max"),
    ):
        speed.evaluate(
            """(el, v) => { el.value = v;
                el.dispatchEvent(new Event('input', { bubbles: true }));
                el.dispatchEvent(new Event('change', { bubbles: true })); }""",
            position,
        )
        expect(page.locator("#speed-value")).to_have_text(text)
        dashboard.wait_for(rid, lambda r, p=pace: r["config"]["pace"] == p, timeout=10)
    page.get_by_role("button", name="Step 1", exact=True).click()
    all_at(page, 1)
    dashboard.request("POST", f"/api/runs/{rid}/stop")
    state(page, "stopped")


def gone(page: Any, timeout: int = 10_000) -> None:
    """The page says the run is deleted, and nothing but the links is left to use."""
    expect(page.locator("#state-badge")).to_have_text("deleted", timeout=timeout)
    expect(page.locator("#gone-banner")).to_be_visible()
    assert "deleted" in page.locator("#gone-banner").inner_text()
    assert enabled(page) == set()


def test_a_run_deleted_elsewhere_says_so(dashboard: Server, page: Any) -> None:
    # The server closes the run's stream (code 4404) when the run is deleted: within a poll.
    run = start(dashboard, "moons", steps=100_000)
    open_run(page, dashboard, run["id"])
    wait_step(page, "boundary", 1)
    assert dashboard.request("DELETE", f"/api/runs/{run['id']}").status_code == 204
    gone(page, timeout=5_000)


def test_a_control_answered_404_says_deleted(dashboard: Server, page: Any) -> None:
    page.allowed_errors = ("status of 404",)  # Chromium logs the refused DELETE

    def keep_open(ws: Any) -> None:
        # Forward the stream, but not the server's 4404 close: the page must learn of the
        # deletion from the control's 404 alone.
        ws.connect_to_server().on_close(lambda code, reason: None)

    page.route_web_socket("**/ws/runs/*", keep_open)
    run = start(dashboard, "moons", steps=100_000, start_paused=True)
    open_run(page, dashboard, run["id"])
    state(page, "paused")
    page.on("dialog", lambda d: d.accept())  # "Delete this run and its history?"
    # Deleted through the API; the page's own Delete (always there) is answered 404.
    assert dashboard.request("DELETE", f"/api/runs/{run['id']}").status_code == 204
    page.get_by_role("button", name="Delete").click()
    gone(page)
