"""kill -9 of a worker and of the server: nothing committed is lost, resume continues."""

from __future__ import annotations

import os
import signal

from tests.server.conftest import Server, integrity, step_metrics


def _check_history(server: Server, run_id: str, upto: int) -> None:
    events = server.events(run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert step_metrics(events) == list(range(1, upto + 1)), "no step missing or duplicated"


def test_kill_worker_then_resume(server: Server) -> None:
    run = server.create("moons", steps=3000, record={"checkpoint_every": 250})
    rid = run["id"]
    running = server.wait_for(rid, lambda r: r["state"] == "running" and r["step"] > 400)
    os.kill(running["pid"], signal.SIGKILL)
    crashed = server.wait_for(rid, lambda r: r["state"] == "crashed")
    assert "signal 9" in crashed["error"]
    assert crashed["checkpoint_step"] is not None and crashed["checkpoint_step"] <= crashed["step"]
    _check_history(server, rid, crashed["step"])

    resumed = server.request("POST", f"/api/runs/{rid}/resume")
    assert resumed.status_code == 200, resumed.text
    done = server.wait_for(rid, lambda r: r["state"] == "finished", timeout=120)
    assert done["step"] == 3000
    _check_history(server, rid, 3000)
    assert integrity(server.data_dir) == "ok"


def test_kill_server_then_resume(server: Server) -> None:
    run = server.create("moons", steps=4000, record={"checkpoint_every": 300})
    rid = run["id"]
    before = server.wait_for(rid, lambda r: r["state"] == "running" and r["step"] > 500)
    server.kill()
    server.start()
    run = server.wait_for(rid, lambda r: r["state"] == "interrupted", timeout=30)
    assert run["step"] >= before["step"]
    _check_history(server, rid, run["step"])
    assert server.request("POST", f"/api/runs/{rid}/pause").status_code == 409

    resumed = server.request("POST", f"/api/runs/{rid}/resume")
    assert resumed.status_code == 200, resumed.text
    done = server.wait_for(rid, lambda r: r["state"] == "finished", timeout=120)
    assert done["step"] == 4000
    _check_history(server, rid, 4000)
    assert integrity(server.data_dir) == "ok"
