"""Every page under its real Content-Security-Policy in Chromium: no violation, and the
features that a strict policy could break (module scripts, the websocket, viz.js's
WebAssembly, the page's own POSTs) still work.

These pages get a context of their own that enforces the policy. The waits use selectors
and `expect`, never `wait_for_function`: Playwright evaluates that one's string in the page
with eval(), which the policy forbids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.server.conftest import Server
from tests.static.conftest import ARTIFACTS
from tests.static.test_draw import DIGITS, draw

TIMEOUT = 90_000  # ms
ENDED = re.compile("finished|stopped")
# Records what the page's policy refused, from before the page's first script runs.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
});
"""


@pytest.fixture
def strict_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page that enforces the policy; console errors and CSP reports are collected."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=False)
    context.add_init_script(RECORD_VIOLATIONS)
    pg = context.new_page()
    pg.console_log = []
    pg.on("console", lambda m: pg.console_log.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: pg.console_log.append(f"pageerror: {e}"))
    try:
        yield pg
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()


def open_page(page: Any, url: str) -> str:
    """Go to `url`; the policy the page was served with."""
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy, policy
    assert "'unsafe-eval'" not in policy.replace("'wasm-unsafe-eval'", "")
    return policy


def assert_clean(page: Any, where: str) -> None:
    """No violation reported by the page, and no error in its console."""
    violations = page.evaluate("window.__csp")
    assert violations == [], f"{where}: {violations}"
    errors = [m for m in page.console_log if m.startswith(("error", "pageerror"))]
    assert errors == [], f"{where}: {errors}"


def wait_ended(page: Any) -> None:
    expect(page.locator("#state-badge")).to_have_text(ENDED, timeout=TIMEOUT)


def test_every_page_runs_under_the_policy(dashboard: Server, strict_page: Any) -> None:
    page = strict_page
    # The run list; a featured preset starts a run from the page (a same-origin POST).
    open_page(page, dashboard.url + "/")
    expect(page.locator("#list-status")).to_have_text("live", timeout=TIMEOUT)
    page.get_by_role("button", name="Napkin").click()
    page.wait_for_url("**/runs/*", timeout=TIMEOUT)
    napkin = page.url.rsplit("/", 1)[1]
    # Paced for watching (30 s), and 15 s at full speed: a few steps are enough here.
    expect(page.locator("#state-badge")).to_have_text("running", timeout=TIMEOUT)
    dashboard.request("POST", f"/api/runs/{napkin}/stop")
    wait_ended(page)
    # The graph panel: viz.js compiled Graphviz (WebAssembly) and drew the SVG.
    page.wait_for_selector("#panel-graph svg g.node", timeout=TIMEOUT)
    assert_clean(page, "napkin run page (live)")

    moons = dashboard.create("moons", steps=60)["id"]
    dashboard.wait_for(moons, lambda r: r["state"] == "finished", timeout=120)
    for run_id in (napkin, moons):
        open_page(page, f"{dashboard.url}/runs/{run_id}")
        wait_ended(page)
        page.wait_for_selector("#panel-graph svg g.node", timeout=TIMEOUT)
        page.wait_for_selector("#panel-loss canvas", timeout=TIMEOUT)
        assert_clean(page, f"run page {run_id}")
    page.screenshot(path=str(ARTIFACTS / "test_csp_moons_run_page.png"), full_page=True)

    open_page(page, f"{dashboard.url}/compare?runs={napkin},{moons}")
    page.wait_for_selector("#compare[data-ready=true]", timeout=TIMEOUT)
    assert page.locator("#compare-chart canvas").count() >= 1
    assert_clean(page, "compare")

    # /draw: the prediction is a POST to /api/predict from the page.
    open_page(page, dashboard.url + "/draw")
    page.wait_for_selector("#model-picker[data-loaded=true]", timeout=TIMEOUT)
    draw(page, DIGITS["1"])
    page.wait_for_selector("#prediction[data-state=done]", timeout=TIMEOUT)
    assert page.locator("#prediction").get_attribute("data-digit") == "1"
    assert_clean(page, "draw")


def test_the_page_controls_post_under_the_policy(dashboard: Server, strict_page: Any) -> None:
    # Pause and stop from the run page's buttons: POSTs the Origin checks must let through.
    run = dashboard.create("moons", steps=200_000)
    dashboard.wait_for(run["id"], lambda r: r["state"] == "running")
    page = strict_page
    open_page(page, f"{dashboard.url}/runs/{run['id']}")
    expect(page.locator("#state-badge")).to_have_text("running", timeout=TIMEOUT)
    page.locator("button[data-action=toggle]").click()  # play/pause: Pause while running
    expect(page.locator("#state-badge")).to_have_text("paused", timeout=TIMEOUT)
    page.locator("button[data-action=stop]").click()
    expect(page.locator("#state-badge")).to_have_text("stopped", timeout=TIMEOUT)
    assert dashboard.run(run["id"])["state"] == "stopped"
    assert_clean(page, "controls")


def test_the_policy_is_enforced(dashboard: Server, strict_page: Any) -> None:
    # The check above can fail: an inline script and an eval are refused and reported.
    page = strict_page
    open_page(page, dashboard.url + "/")
    reported = page.evaluate("""() => new Promise((resolve) => {
        // Each refusal is reported by an event queued after it: wait for both (or give up).
        let seen = 0;
        document.addEventListener('securitypolicyviolation', () => {
            if (++seen === 2) resolve(true);
        });
        setTimeout(() => resolve(false), 30000);
        const s = document.createElement('script');
        s.textContent = 'window.__inline = true';
        document.body.appendChild(s);
        // eval from the page's own task (DevTools' evaluation itself is exempt).
        setTimeout(() => {
            try {
                window.eval('window.__evaled = true');
            } catch (e) {
                window.__evalError = e.name;
            }
        }, 0);
    })""")
    assert reported, page.evaluate("window.__csp")
    violations = page.evaluate("window.__csp")
    assert sorted(violations) == ["script-src blocked eval", "script-src-elem blocked inline"]
    state = page.evaluate("[window.__inline, window.__evaled, window.__evalError]")
    assert state == [None, None, "EvalError"]
