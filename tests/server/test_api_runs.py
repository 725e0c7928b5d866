"""Runs over REST and websockets against a real server (uvicorn on a loopback port).

The tests share one server (`module_server`), except the one that judges the whole run list,
which owns its server. The article's napkin run (300 steps of the scalar engine) trains once:
one test watches it live, another reads it back over REST.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest
from websockets.sync.client import connect

from gradscope.server.store import pid_alive
from tests.server.conftest import Server, step_metrics, watch


@pytest.fixture(scope="module")
def napkin(module_server: Server) -> dict[str, Any]:
    """The napkin run, as its creation answered (queued or running: not waited for).

    Its 300 full-batch steps on 200 rectangles rather than the preset's 1000: a fifth of the
    scalar engine's work, and the weights still end within 0.005 of 0.25 (seed 0). The
    article's own numbers are checked in tests/engine/test_examples.py.
    """
    return module_server.create("napkin-average", dataset={"n": 200})


def test_napkin_over_rest_and_websocket(module_server: Server, napkin: dict[str, Any]) -> None:
    server, run = module_server, napkin
    assert run["state"] in ("queued", "running")
    hello, events = watch(server.ws_url, run["id"])
    assert hello["kind"] == "hello" and hello["run"]["id"] == run["id"]
    assert hello["config"]["engine"] == "scalar"
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order"
    total = run["total_steps"]
    assert step_metrics(events) == list(range(1, total + 1))
    weights = [e for e in events if e["type"] == "weights"]
    final = weights[-1]["data"]["params"]
    values = [v for vs in final.values() for v in vs]
    assert len(values) == 4
    assert all(abs(v - 0.25) < 0.01 for v in values), values
    states = [e["data"]["state"] for e in events if e["type"] == "state"]
    assert states[0] == "running" and states[-1] == "finished"
    assert server.run(run["id"])["state"] == "finished"


def test_metrics_snapshots_and_export(module_server: Server, napkin: dict[str, Any]) -> None:
    server = module_server
    run = server.wait_for(napkin["id"], lambda r: r["state"] == "finished", timeout=120)
    rid, total = run["id"], run["total_steps"]
    m = server.request("GET", f"/api/runs/{rid}/metrics", params={"names": "train_loss"}).json()
    assert list(m["series"]) == ["train_loss"]
    assert m["series"]["train_loss"]["step"] == list(range(1, total + 1))
    losses = m["series"]["train_loss"]["value"]
    assert losses[-1] < losses[0]
    later = server.request(
        "GET", f"/api/runs/{rid}/metrics", params={"since": m["series"]["train_loss"]["seq"][-10]}
    ).json()
    assert later["series"]["train_loss"]["step"] == list(range(total - 8, total + 1))

    w = server.request("GET", f"/api/runs/{rid}/snapshots/weights", params={"at": 10}).json()
    assert w["step"] <= 10 and w["kind"] == "weights"
    latest = server.request("GET", f"/api/runs/{rid}/snapshots/weights").json()
    assert latest["step"] == total
    graph = server.request("GET", f"/api/runs/{rid}/snapshots/graph")
    assert graph.status_code == 200 and graph.json()["data"]["nodes"]
    none = server.request("GET", f"/api/runs/{rid}/snapshots/confusion")
    assert none.status_code == 404 and "confusion" in none.json()["detail"]
    bad_kind = server.request("GET", f"/api/runs/{rid}/snapshots/passwords")
    assert bad_kind.status_code == 422

    text = server.request("GET", f"/api/runs/{rid}/export", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    steps = [int(r["step"]) for r in rows if r["train_loss"]]
    assert steps == list(range(1, total + 1))
    data = server.request("GET", f"/api/runs/{rid}/export", params={"format": "json"}).json()
    assert data["run"]["id"] == rid and len(data["events"]) == run["last_seq"]


def _long_run(server: Server, steps: int = 1_000_000) -> dict:
    return server.create("moons", steps=steps, record={"checkpoint_every": 200})


def test_pause_step_resume_stop(module_server: Server) -> None:
    server = module_server
    run = _long_run(server)
    rid = run["id"]
    server.wait_for(rid, lambda r: r["state"] == "running" and r["step"] > 50)
    paused = server.request("POST", f"/api/runs/{rid}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"] == "paused"
    at = paused.json()["step"]
    time.sleep(0.5)
    assert server.run(rid)["step"] == at, "a paused run does not move"

    stepped = server.request("POST", f"/api/runs/{rid}/step", json={"n": 7})
    assert stepped.status_code == 200, stepped.text
    assert stepped.json()["step"] == at + 7 and stepped.json()["state"] == "paused"
    time.sleep(0.3)
    assert server.run(rid)["step"] == at + 7

    again = server.request("POST", f"/api/runs/{rid}/pause")
    assert again.status_code == 409 and "paused" in again.json()["detail"]

    resumed = server.request("POST", f"/api/runs/{rid}/resume")
    assert resumed.json()["state"] == "running"
    server.wait_for(rid, lambda r: r["step"] > at + 100)
    step_running = server.request("POST", f"/api/runs/{rid}/step", json={"n": 1})
    assert step_running.status_code == 409

    stopped = server.request("POST", f"/api/runs/{rid}/stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    final_step = stopped.json()["step"]
    steps = step_metrics(server.events(rid))
    assert steps == list(range(1, final_step + 1)), "every step recorded once"
    late = server.request("POST", f"/api/runs/{rid}/pause")
    assert late.status_code == 409 and "stopped" in late.json()["detail"]


def test_queue_delete_and_run_list_stream(server: Server) -> None:
    """The server's own: it counts every run the server has."""
    with connect(f"{server.ws_url}/ws/runs", open_timeout=30, max_queue=None) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["kind"] == "runs" and first["full"] is True
        runs = [_long_run(server) for _ in range(3)]  # the server allows 2 at once here
        seen: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len([s for s in seen.values() if s == "running"]) < 2:
            assert time.monotonic() < deadline, f"two runs never ran at once: {seen}"
            msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            seen.update({r["id"]: r["state"] for r in msg["runs"]})
        states = {r["id"]: server.run(r["id"])["state"] for r in runs}
        assert sorted(states.values()) == ["queued", "running", "running"], states
        queued = next(k for k, v in states.items() if v == "queued")
        running = next(k for k, v in states.items() if v == "running")
        assert server.request("DELETE", f"/api/runs/{running}").status_code == 204
        assert server.request("GET", f"/api/runs/{running}").status_code == 404
        server.wait_for(queued, lambda r: r["state"] == "running")
        deleted: list[str] = []
        deadline = time.monotonic() + 30
        while running not in deleted:
            assert time.monotonic() < deadline, f"no deletion of {running} in the list stream"
            deleted += json.loads(ws.recv(timeout=10))["deleted"]
    for r in runs:
        server.request("DELETE", f"/api/runs/{r['id']}")
    assert server.request("GET", "/api/runs").json()["runs"] == []


def test_presets_listed_with_full_configs(module_server: Server) -> None:
    server = module_server
    presets = {p["name"]: p for p in server.request("GET", "/api/presets").json()["presets"]}
    expected = {
        "napkin-average",
        "micrograd-classifier",
        "moons",
        "circle",
        "xor",
        "spiral",
        "mnist-mlp",
    }
    assert expected <= set(presets)
    assert presets["napkin-average"]["featured"] and presets["micrograd-classifier"]["featured"]
    assert presets["mnist-mlp"]["config"]["dataset"]["name"] == "mnist"
    docs = server.request("GET", "/openapi.json").json()
    assert "/api/runs/{run_id}/step" in docs["paths"]


def test_a_run_stopped_while_its_worker_starts_stays_stopped(module_server: Server) -> None:
    """The worker takes a second to load MNIST; a stop in that window must stick."""
    server = module_server
    run = server.create("mnist-mlp", steps=1_000_000)
    r = server.request("POST", f"/api/runs/{run['id']}/stop")
    assert r.status_code == 200 and r.json()["state"] == "stopped", r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the worker (if one started) has exited
        pid = server.run(run["id"])["pid"]
        if not pid_alive(pid):  # a zombie counts as gone
            break
        time.sleep(0.1)
    record = server.run(run["id"])
    assert record["state"] == "stopped" and record["step"] == 0, record
    assert not step_metrics(server.events(run["id"]))
