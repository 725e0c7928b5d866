"""Bad input gets a 4xx (or a clean websocket close with a reason); the server keeps serving.

The REST errors go to the app in this process (one for the module); the websocket ones to
one real server for the module (real uvicorn, real websockets).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.server.conftest import InProcess, Server, in_process

# A napkin run of a few steps: a real finished run, without the scalar engine's 300 steps.
SHORT_NAPKIN = {"steps": 3}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("api") / "data", real_mnist) as a:
        yield a


@pytest.fixture(scope="module")
def ws_run(module_server: Server) -> dict[str, Any]:
    return module_server.create("napkin-average", **SHORT_NAPKIN)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"preset": "no-such-preset"}, "preset"),
        ({"preset": "moons", "config": {"optimizer": {"lr": -0.1}}}, "optimizer.lr"),
        ({"preset": "moons", "config": {"model": {"hidden": [0]}}}, "model.hidden"),
        ({"preset": "moons", "config": {"optimizer": {"lr": "fast"}}}, "optimizer.lr"),
        ({"preset": "moons", "config": {"batch_size": [1]}}, "batch_size"),
        ({"preset": "moons", "config": {"model": {"hidden": [30_000, 30_000, 30_000]}}}, "model"),
        ({"preset": "moons", "config": {"no_such_field": 1}}, "no_such_field"),
        ({"preset": "moons", "config": {"dataset": {"a.b": 1}}}, 'dataset."a.b"'),
    ],
)
def test_bad_config_is_422_naming_the_field(api: InProcess, body: dict, field: str) -> None:
    r = api.request("POST", "/api/runs", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(field in d.get("field", ".".join(map(str, d["loc"]))) for d in detail), detail
    if field == 'dataset."a.b"':  # the location keeps the key whole
        assert detail[0]["loc"] == ["body", "config", "dataset", "a.b"], detail


def test_bad_requests(api: InProcess) -> None:
    assert api.request("POST", "/api/runs", content=b"{not json").status_code == 422
    assert api.request("POST", "/api/runs", json=[1, 2]).status_code == 422
    assert api.request("GET", "/api/runs/0123456789ab").status_code == 404
    assert api.request("GET", "/api/runs/../../etc").status_code == 404
    assert api.request("POST", "/api/runs/0123456789ab/pause").status_code == 404
    run = api.create("napkin-average", **SHORT_NAPKIN)
    rid = run["id"]
    api.wait_for(rid, lambda r: r["state"] == "finished")
    r = api.request("POST", f"/api/runs/{rid}/pause")
    assert r.status_code == 409 and "finished" in r.json()["detail"]
    assert api.request("POST", f"/api/runs/{rid}/step", json={"n": 0}).status_code == 422
    assert api.request("POST", f"/api/runs/{rid}/step", json={"n": 5}).status_code == 409
    assert api.request("POST", f"/api/runs/{rid}/resume").status_code == 409
    assert (
        api.request("GET", f"/api/runs/{rid}/export", params={"format": "xml"}).status_code == 422
    )
    assert api.request("GET", f"/api/runs/{rid}/metrics", params={"since": -1}).status_code == 422
    assert api.request("GET", "/api/runs").status_code == 200


@pytest.mark.parametrize(
    "message", ["garbage", '{"since": -4}', '{"since": "x"}', "[1]", '{"since": 1, "evil": true}']
)
def test_garbage_websocket_messages_close_cleanly(
    module_server: Server, ws_run: dict[str, Any], message: str
) -> None:
    run = ws_run
    with connect(
        f"{module_server.ws_url}/ws/runs/{run['id']}", open_timeout=30, max_queue=None
    ) as ws:
        ws.recv(timeout=10)  # hello
        ws.send(message)
        deadline = time.monotonic() + 30  # the close comes, or DID NOT RAISE
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason
    assert module_server.request("GET", f"/api/runs/{run['id']}").status_code == 200


def test_unknown_run_websocket_closes_with_reason(module_server: Server) -> None:
    with (
        connect(
            f"{module_server.ws_url}/ws/runs/0123456789ab", open_timeout=30, max_queue=None
        ) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4404 and "no run" in closed.value.rcvd.reason
