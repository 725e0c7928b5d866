"""Each limit, exceeded, answers its 4xx (or websocket close) with a message naming the
setting: body size, runs per minute, concurrent runs and the queue, steps per request,
parameters per model, steps per run, websocket message size (also when another server runs
the app). A real server (one for the module) where uvicorn has a part: bodies sent whole or
chunked, websocket frames; the app in this process for concurrent runs and the queue."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gradscope.server.runs.config import resolve_config
from gradscope.server.settings import Settings
from gradscope.server.web.limits import SlidingWindow, retry_after
from tests.server.conftest import Server, in_process
from tests.server.test_security import AnyAnswerServer, started

RUN_ID = "0123456789ab"  # a well-formed id no run has
LIMITS = {
    "GRADSCOPE_MAX_BODY_BYTES": "2048",
    "GRADSCOPE_MAX_RUNS_PER_MINUTE": "1",
    "GRADSCOPE_WS_MAX_MESSAGE_BYTES": "1024",
    "GRADSCOPE_MAX_PARAMETERS": "5000",
    "GRADSCOPE_MAX_STEPS": "1000",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with started(Server(tmp_path_factory.mktemp("limited") / "data", LIMITS)) as s:
        yield s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides() -> None:
    clock = Clock()
    window = SlidingWindow(2, 60.0, clock)
    assert window.acquire() is None
    clock.now += 10
    assert window.acquire() is None
    clock.now += 5
    assert window.acquire() == pytest.approx(45.0)  # until the first one is a minute old
    clock.now += 45
    assert window.acquire() is None  # the first has left the window
    assert window.acquire() == pytest.approx(10.0)
    window.release()  # that one did not happen: room for one more
    assert window.acquire() is None
    assert [retry_after(w) for w in (0.01, 1.0, 1.2, 59.5)] == ["1", "1", "2", "60"]


@pytest.mark.parametrize(
    "name", ["MAX_BODY_BYTES", "MAX_RUNS_PER_MINUTE", "WS_MAX_MESSAGE_BYTES", "MAX_STEP_REQUEST"]
)
def test_a_limit_below_one_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"GRADSCOPE_{name}", "0")
    with pytest.raises(ValueError, match=f"GRADSCOPE_{name}"):
        Settings.from_env()


def test_defaults() -> None:
    s = Settings()
    assert (s.max_body_bytes, s.max_runs_per_minute, s.ws_max_message_bytes) == (65536, 30, 65536)
    assert s.max_queue == 100 and s.max_step_request == 100_000


def test_a_body_over_the_limit_is_413(limited: Server) -> None:
    path = f"/api/runs/{RUN_ID}/step"
    big = json.dumps({"n": 1, "pad": "x" * 3000}).encode()
    r = limited.request("POST", path, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert "GRADSCOPE_MAX_BODY_BYTES" in detail and "2,048" in detail and f"{len(big):,}" in detail
    # Chunked: no Content-Length to judge by; the count while reading catches it.
    chunks = iter([big[:1000], big[1000:2000], big[2000:]])
    r = limited.request("POST", path, content=chunks, headers={"content-type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413 and "GRADSCOPE_MAX_BODY_BYTES" in r.json()["detail"]
    r = limited.request("POST", "/api/runs", content=big, headers={"content-type": "text/plain"})
    assert r.status_code == 413
    # Under the limit, declared or chunked, the request reaches the route (no such run).
    small = json.dumps({"n": 1, "pad": "x" * 1900}).encode()
    json_type = {"content-type": "application/json"}
    r = limited.request("POST", path, content=small, headers=json_type)
    assert r.status_code == 404, r.text
    r = limited.request("POST", path, content=iter([small[:1000], small[1000:]]), headers=json_type)
    assert r.status_code == 404, r.text
    # /api/predict keeps its own 1 MB limit: 10 kB of pixels get past ours (and are judged).
    pixels = {"pixels": [0.123456] * 1500}
    r = limited.request("POST", "/api/predict", json=pixels)
    assert r.status_code == 422 and "784" in r.text, r.text
    assert limited.request("GET", "/api/runs").status_code == 200


def test_runs_per_minute(limited: Server) -> None:
    # A refused config does not count; the second run within the minute is refused.
    bad = limited.request("POST", "/api/runs", json={"preset": "no-such-preset"})
    assert bad.status_code == 422
    limited.create("napkin-average", steps=3)  # a short real run, done in a moment
    r = limited.request("POST", "/api/runs", json={"preset": "napkin-average"})
    assert r.status_code == 429, r.text
    assert "GRADSCOPE_MAX_RUNS_PER_MINUTE" in r.json()["detail"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert len(limited.request("GET", "/api/runs").json()["runs"]) == 1


def test_parameters_per_model_and_steps_per_run(limited: Server) -> None:
    # moons 2-64-64-2 has 4,482 parameters, 2-80-64-2 5,554.
    cases = [
        ({"model": {"hidden": [80, 64]}}, "model.hidden", "5,554 parameters", "PARAMETERS"),
        ({"steps": 1001}, "steps", "1,001 steps", "STEPS"),
        ({"steps": None, "epochs": 1000}, "epochs", "steps is more", "STEPS"),
    ]
    for config, field, said, setting in cases:
        r = limited.request("POST", "/api/runs", json={"preset": "moons", "config": config})
        assert r.status_code == 422, r.text
        (d,) = r.json()["detail"]
        assert d["field"] == field and said in d["msg"], d
        assert f"GRADSCOPE_MAX_{setting}" in d["msg"], d
    # At the limits a config passes (checked without creating a run: this server allows
    # one run a minute, which test_runs_per_minute spends).
    at_limits = {"model": {"hidden": [64, 64]}, "steps": 1000}
    config = resolve_config("moons", at_limits, max_parameters=5000, max_steps=1000)
    assert config.num_parameters() == 4482 and config.total_steps() == 1000


def _closed_by(url: str, message: str) -> ConnectionClosed:
    """Send `message` after the first server message; the close that follows."""
    with connect(url, open_timeout=30, max_queue=None, max_size=None) as ws:
        ws.recv(timeout=30)
        ws.send(message)
        deadline = time.monotonic() + 30  # the close comes, or DID NOT RAISE
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                ws.recv(timeout=30)
    return closed.value


def test_a_websocket_message_over_the_limit_closes_1009(limited: Server) -> None:
    closed = _closed_by(f"{limited.ws_url}/ws/runs", "x" * 2000)
    assert closed.rcvd is not None and closed.rcvd.code == 1009


def test_the_websocket_limit_holds_under_another_server(tmp_path: Path) -> None:
    # Plain uvicorn allows 16 MiB messages: the 1009 here comes from the app itself.
    def uvicorn(port: int) -> list[str]:
        app = ["--factory", "gradscope.server.web.app:create_app", "--port", str(port)]
        return [sys.executable, "-m", "uvicorn", *app, "--log-level", "warning"]

    env = {
        "GRADSCOPE_DATA_DIR": str(tmp_path / "data"),
        "GRADSCOPE_WS_MAX_MESSAGE_BYTES": "1024",
        "GRADSCOPE_HOST": "127.0.0.1",
    }
    with started(AnyAnswerServer(tmp_path / "data", env, command=uvicorn)) as s:
        run = s.create("napkin-average", steps=3)
        url = f"{s.ws_url}/ws/runs/{run['id']}"
        since = '{"since": 0}'
        # A valid message padded past the limit (JSON allows the spaces): closed, with why.
        closed = _closed_by(url, since + " " * 2000)
        assert closed.rcvd is not None and closed.rcvd.code == 1009
        assert "1,024 bytes" in closed.rcvd.reason
        closed = _closed_by(f"{s.ws_url}/ws/runs", "é" * 600)  # 600 characters, 1200 bytes
        assert closed.rcvd is not None and closed.rcvd.code == 1009
        # Under the limit it is understood: the replay from seq 0 comes back.
        with connect(url, open_timeout=30, max_queue=None, max_size=None) as ws:
            ws.recv(timeout=30)
            ws.send(since + " " * 900)
            first = json.loads(ws.recv(timeout=30))
            assert first["kind"] == "events" and first["events"][0]["seq"] == 1


def test_concurrent_runs_and_the_queue(tmp_path: Path, real_mnist: Path) -> None:
    # The app in this process (its runs train in real worker processes): no server to start.
    limits = {"max_concurrent": 1, "max_queue": 1, "max_step_request": 10}
    with in_process(tmp_path / "data", real_mnist, **limits) as s:
        a = s.create("moons", steps=200_000)
        s.wait_for(a["id"], lambda r: r["state"] == "running")
        # One run at a time: the next one waits in the queue while the first trains.
        b = s.create("moons", steps=50)
        assert b["state"] == "queued"
        full = s.request("POST", "/api/runs", json={"preset": "napkin-average"})
        assert full.status_code == 429 and "queue is full" in full.json()["detail"]
        assert "GRADSCOPE_MAX_QUEUE" in full.json()["detail"]
        runs = {r["id"]: r["state"] for r in s.request("GET", "/api/runs").json()["runs"]}
        assert runs == {a["id"]: "running", b["id"]: "queued"}

        # Steps per request.
        assert s.request("POST", f"/api/runs/{a['id']}/pause").status_code == 200
        before = s.run(a["id"])["step"]
        r = s.request("POST", f"/api/runs/{a['id']}/step", json={"n": 11})
        assert r.status_code == 422 and "GRADSCOPE_MAX_STEP_REQUEST" in r.text
        r = s.request("POST", f"/api/runs/{a['id']}/step", json={"n": 10})
        assert r.status_code == 200 and r.json()["step"] == before + 10
        assert s.run(b["id"])["state"] == "queued"  # a paused run still holds its slot

        # The slot frees: the queued run trains, and the queue has room again.
        assert s.request("POST", f"/api/runs/{a['id']}/stop").status_code == 200
        s.wait_for(b["id"], lambda r: r["state"] == "finished", timeout=120)
        assert s.create("napkin-average", steps=3)["state"] in ("queued", "running")
