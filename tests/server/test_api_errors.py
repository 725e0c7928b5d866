"""Bad input gets a 4xx (or a clean websocket close with a reason); the server keeps serving."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.server.conftest import Server


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
def test_bad_config_is_422_naming_the_field(server: Server, body: dict, field: str) -> None:
    r = server.request("POST", "/api/runs", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(field in d.get("field", ".".join(map(str, d["loc"]))) for d in detail), detail
    if field == 'dataset."a.b"':  # the location keeps the key whole
        assert detail[0]["loc"] == ["body", "config", "dataset", "a.b"], detail


def test_bad_requests(server: Server) -> None:
    assert server.request("POST", "/api/runs", content=b"{not json").status_code == 422
    assert server.request("POST", "/api/runs", json=[1, 2]).status_code == 422
    assert server.request("GET", "/api/runs/0123456789ab").status_code == 404
    assert server.request("GET", "/api/runs/../../etc").status_code == 404
    assert server.request("POST", "/api/runs/0123456789ab/pause").status_code == 404
    run = server.create("napkin-average")
    rid = run["id"]
    server.wait_for(rid, lambda r: r["state"] == "finished")
    r = server.request("POST", f"/api/runs/{rid}/pause")
    assert r.status_code == 409 and "finished" in r.json()["detail"]
    assert server.request("POST", f"/api/runs/{rid}/step", json={"n": 0}).status_code == 422
    assert server.request("POST", f"/api/runs/{rid}/step", json={"n": 5}).status_code == 409
    assert server.request("POST", f"/api/runs/{rid}/resume").status_code == 409
    assert (
        server.request("GET", f"/api/runs/{rid}/export", params={"format": "xml"}).status_code
        == 422
    )
    assert (
        server.request("GET", f"/api/runs/{rid}/metrics", params={"since": -1}).status_code == 422
    )
    assert server.request("GET", "/api/runs").status_code == 200


@pytest.mark.parametrize(
    "message", ["garbage", '{"since": -4}', '{"since": "x"}', "[1]", '{"since": 1, "evil": true}']
)
def test_garbage_websocket_messages_close_cleanly(server: Server, message: str) -> None:
    run = server.create("napkin-average")
    with connect(f"{server.ws_url}/ws/runs/{run['id']}", open_timeout=30) as ws:
        ws.recv(timeout=10)  # hello
        ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason
    assert server.request("GET", f"/api/runs/{run['id']}").status_code == 200


def test_unknown_run_websocket_closes_with_reason(server: Server) -> None:
    with (
        connect(f"{server.ws_url}/ws/runs/0123456789ab", open_timeout=30) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4404 and "no run" in closed.value.rcvd.reason
