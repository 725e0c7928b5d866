"""Forks (POST /api/runs/{id}/fork): a child that continues its parent from a step, bit for
bit with no changes, differently after the step with a new learning rate; its history up to
the step is its parent's, read through. Real server, real workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.server.conftest import Server, live_server

ENDED = ("finished", "failed", "stopped")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    with live_server(tmp_path_factory.mktemp("fork"), real_mnist) as s:
        yield s


def finished(server: Server, rid: str) -> dict[str, Any]:
    run = server.wait_for(rid, lambda r: r["state"] in ENDED)
    assert run["state"] == "finished", run
    return run


def fork(server: Server, rid: str, step: int, **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"step": step}
    if config:
        body["config"] = config
    r = server.request("POST", f"/api/runs/{rid}/fork", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def losses(server: Server, rid: str) -> dict[int, float]:
    """The run's own per-step training losses, by step."""
    return {
        e["step"]: e["data"]["train_loss"]
        for e in server.events(rid)
        if e["type"] == "metrics" and "train_loss" in e["data"]
    }


def weights(server: Server, rid: str, at: int | None = None) -> dict[str, list[float]]:
    params = {} if at is None else {"at": at}
    r = server.request("GET", f"/api/runs/{rid}/snapshots/weights", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]["params"]


def history(server: Server, rid: str, **params: Any) -> dict[str, Any]:
    r = server.request("GET", f"/api/runs/{rid}/history", params={"names": "train_loss", **params})
    assert r.status_code == 200, r.text
    return r.json()["series"]["train_loss"]


def test_a_moons_fork_continues_bit_for_bit_and_a_new_lr_differs_after_the_step(
    server: Server,
) -> None:
    # Adam (moments), 13 batches an epoch (the data order), a checkpoint every 20 steps: of
    # which the loop keeps the last two (40, 50), so a fork at 30 trains again from the
    # start and a fork at 45 from the file at 40.
    parent = server.create("moons", steps=50, record={"every": 5, "checkpoint_every": 20})
    pid = parent["id"]
    end = finished(server, pid)
    theirs = losses(server, pid)
    assert sorted(theirs) == list(range(1, 51))
    same = fork(server, pid, 30)
    assert same["parent_id"] == pid and same["fork_step"] == 30 and same["step"] == 30
    late = fork(server, pid, 45)
    faster = fork(server, pid, 30, optimizer={"lr": 0.05})
    for child in (same, late, faster):
        finished(server, child["id"])
    ours = losses(server, same["id"])
    assert sorted(ours) == list(range(31, 51))  # its own steps: those after the fork
    assert ours == {s: v for s, v in theirs.items() if s > 30}  # bit for bit
    assert weights(server, same["id"]) == weights(server, pid)
    assert losses(server, late["id"]) == {s: v for s, v in theirs.items() if s > 45}
    # A fork of the fork, in the fork's own steps or before them (its parent's): still the
    # parent's run, bit for bit.
    grand, early = fork(server, same["id"], 40), fork(server, same["id"], 20)
    finished(server, grand["id"])
    finished(server, early["id"])
    assert losses(server, grand["id"]) == {s: v for s, v in theirs.items() if s > 40}
    assert losses(server, early["id"]) == {s: v for s, v in theirs.items() if s > 20}
    assert history(server, early["id"]) == history(server, pid)
    # A new learning rate: step 31's loss is of the weights at 30 (shared); then it differs.
    other = losses(server, faster["id"])
    assert other[31] == theirs[31]
    assert all(other[s] != theirs[s] for s in range(32, 51))
    assert weights(server, faster["id"]) != weights(server, pid)
    # Its history is the parent's up to the fork step, then its own.
    mine, shared = history(server, faster["id"]), history(server, pid, to=30)
    cut = mine["step"].index(31)
    assert {k: v[:cut] for k, v in mine.items()} == shared
    assert mine["last"][cut:] == [other[s] for s in range(31, 51)]
    assert mine["step"][-1] == 50 == end["step"]
    # Its frames before the step are the parent's; GET /api/runs/{id} says where it came from.
    frame = server.request("GET", f"/api/runs/{faster['id']}/frame", params={"at": 29}).json()
    theirs_frame = server.request("GET", f"/api/runs/{pid}/frame", params={"at": 29}).json()
    assert frame["events"] == theirs_frame["events"] and 25 <= frame["step"] < 30
    run = server.run(faster["id"])
    assert (run["parent_id"], run["fork_step"], run["name"]) == (
        pid,
        30,
        f"{end['name']} · fork@30",
    )
    assert run["config"]["optimizer"]["lr"] == 0.05
    # The websocket's hello carries the prefix too.
    with connect(f"{server.ws_url}/ws/runs/{faster['id']}") as ws:
        hello = json.loads(ws.recv(timeout=30))
    assert hello["history"]["series"]["train_loss"]["step"][0] == 1
    assert hello["run"]["parent_id"] == pid
    # Its export is its own steps, and names its parent and fork step.
    export = server.request("GET", f"/api/runs/{faster['id']}/export?format=json").json()
    assert (export["run"]["parent_id"], export["run"]["fork_step"]) == (pid, 30)
    # A parent with forks is not deleted (their history is its); once they are gone, it is.
    r = server.request("DELETE", f"/api/runs/{pid}")
    assert r.status_code == 409 and same["id"] in r.json()["detail"], r.text
    assert server.request("DELETE", f"/api/runs/{same['id']}").status_code == 409  # its fork
    for rid in (grand["id"], early["id"], same["id"], late["id"], faster["id"], pid):
        assert server.request("DELETE", f"/api/runs/{rid}").status_code == 204


def test_a_napkin_fork_at_a_frame_step(server: Server) -> None:
    # The napkin neuron on 40 rectangles (of 1000: the scalar engine's steps are slow).
    pid = server.create("napkin-average", steps=30, dataset={"n": 40}, record={"every": 5})["id"]
    finished(server, pid)
    theirs = losses(server, pid)
    same, slower = fork(server, pid, 15), fork(server, pid, 15, optimizer={"lr": 0.02})
    finished(server, same["id"])
    finished(server, slower["id"])
    assert losses(server, same["id"]) == {s: v for s, v in theirs.items() if s > 15}
    assert weights(server, same["id"]) == weights(server, pid)
    other = losses(server, slower["id"])
    assert other[16] == theirs[16] and all(other[s] != theirs[s] for s in range(17, 31))
    assert weights(server, slower["id"], 15) == weights(server, pid, 15)  # shared
    assert weights(server, slower["id"]) != weights(server, pid)


def test_a_weight_set_by_hand_is_set_again_in_the_fork(server: Server) -> None:
    rid = server.create("moons", steps=40, start_paused=True, record={"every": 5})["id"]
    server.wait_for(rid, lambda r: r["state"] == "paused")
    assert server.request("POST", f"/api/runs/{rid}/step", json={"n": 10}).status_code == 200
    body = {"param": "0.weight", "index": [3, 1], "value": 0.75}
    assert server.request("POST", f"/api/runs/{rid}/interventions", json=body).status_code == 201
    assert server.request("POST", f"/api/runs/{rid}/resume").status_code == 200
    finished(server, rid)
    # Without the checkpoint the edit rewrote, the fork trains again from the start and must
    # make the edit again at step 10.
    for path in (server.data_dir / "checkpoints" / rid).glob("step-10.npz"):
        path.unlink()
    child = fork(server, rid, 25)
    finished(server, child["id"])
    assert losses(server, child["id"]) == {s: v for s, v in losses(server, rid).items() if s > 25}


def test_bad_forks_are_refused_naming_the_field(server: Server) -> None:
    pid = server.create("moons", steps=30)["id"]
    finished(server, pid)

    def refused(body: Any, status: int = 422) -> Any:
        r = server.request("POST", f"/api/runs/{pid}/fork", json=body)
        assert r.status_code == status, r.text
        return r.json()["detail"]

    def loc(body: Any) -> list[Any]:
        return refused(body)[0]["loc"]

    assert loc({"step": 31}) == ["body", "step"]  # in the future
    assert "in the future" in refused({"step": 31})[0]["msg"]
    assert loc({"step": 30}) == ["body", "step"]  # the end: nothing left to train
    assert loc({"step": -1}) == ["body", "step"]
    assert loc({"step": "5"}) == ["body", "step"]
    assert loc({}) == ["body", "step"]
    assert loc({"step": 10, "config": {"optimizer": {"lrr": 1}}}) == [
        "body", "config", "optimizer", "lrr"
    ]  # fmt: skip
    assert loc({"step": 10, "config": {"model": {"hidden": [4]}}}) == [
        "body", "config", "model", "hidden"
    ]  # fmt: skip
    assert loc({"step": 10, "config": {"batch_size": 8}}) == ["body", "config", "batch_size"]
    assert loc({"step": 10, "config": {"dataset": {"name": "xor"}}})[:3] == [
        "body", "config", "dataset"
    ]  # fmt: skip
    assert loc({"step": 10, "config": {"steps": 10}}) == ["body", "config", "steps"]
    assert loc({"step": 10, "config": {"optimizer": {"lr": -1}}}) == [
        "body", "config", "optimizer", "lr"
    ]  # fmt: skip
    r = server.request("POST", "/api/runs/0123456789ab/fork", json={"step": 0})
    assert r.status_code == 404, r.text
    # A run logged from elsewhere (the ingest API) has no state here to fork from.
    r = server.request("POST", "/api/ingest/runs", json={"name": "theirs", "config": {"lr": 1}})
    assert r.status_code == 201, r.text
    r = server.request("POST", f"/api/runs/{r.json()['id']}/fork", json={"step": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "step"], r.text
    # Extending the run is a change a fork may make: from its last step on.
    longer = fork(server, pid, 30, steps=40)
    assert finished(server, longer["id"])["step"] == 40
    assert sorted(losses(server, longer["id"])) == list(range(31, 41))
