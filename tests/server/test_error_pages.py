"""Pages answer errors with a readable HTML page; the API, at the same time, with JSON."""

from __future__ import annotations

import pytest

from tests.server.conftest import InProcess

UNKNOWN = "0123456789ab"  # a well-formed id no run has


@pytest.mark.parametrize(
    "path",
    [f"/runs/{UNKNOWN}", "/runs/not-a-run-id", f"/compare?runs={UNKNOWN}"],
)
def test_an_unknown_run_on_a_page_is_a_404_page(app: InProcess, path: str) -> None:
    r = app.request("GET", path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert 'id="error-page"' in r.text and "Not Found" in r.text
    assert "no run with id" in r.text
    assert '<a href="/">' in r.text  # a way home


def test_compare_names_the_unknown_one_among_known_runs(app: InProcess) -> None:
    run = app.create("napkin-average")
    r = app.request("GET", "/compare", params={"runs": f"{run['id']},{UNKNOWN}"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert UNKNOWN in r.text and run["id"] not in r.text.split("no run with id", 1)[1]
    assert app.request("GET", "/compare", params={"runs": run["id"]}).status_code == 200


def test_the_error_page_escapes_what_the_request_said(app: InProcess) -> None:
    r = app.request("GET", "/runs/<img src=x onerror=alert(1)>")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<img" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text


@pytest.mark.parametrize(
    "path",
    [
        f"/api/runs/{UNKNOWN}",
        "/api/runs/not-a-run-id",
        f"/api/runs/{UNKNOWN}/metrics",
        f"/api/runs/{UNKNOWN}/snapshots/weights",
    ],
)
def test_the_api_keeps_json(app: InProcess, path: str) -> None:
    r = app.request("GET", path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json()["detail"].startswith("no run with id")


def test_a_path_no_page_has_stays_json(app: InProcess) -> None:
    r = app.request("GET", "/no-such-page")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_a_wrong_method_lists_the_allowed_ones(app: InProcess) -> None:
    r = app.request("PUT", "/api/runs")
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}
    r = app.request("POST", f"/runs/{UNKNOWN}")  # a page's path: still a JSON 405
    assert r.status_code == 405 and "GET" in r.headers["allow"]
