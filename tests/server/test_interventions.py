"""Edits as events: a weight set by hand on a paused run (POST /api/runs/{id}/interventions)
is an `intervention` event, shows in the step's frame, and training continues from it, through
a crash and a resume too. Real server, real workers."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gradscope.server.runs.events import validate_event
from tests.server.conftest import Server, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    with live_server(tmp_path_factory.mktemp("interventions"), real_mnist) as s:
        yield s


def paused(server: Server, preset: str, **config: Any) -> str:
    rid = server.create(preset, start_paused=True, **config)["id"]
    server.wait_for(rid, lambda r: r["state"] == "paused")
    return rid


def set_weight(server: Server, rid: str, param: str, index: list[int], value: float) -> Any:
    body = {"param": param, "index": index, "value": value}
    return server.request("POST", f"/api/runs/{rid}/interventions", json=body)


def weights_at(server: Server, rid: str, step: int) -> dict[str, list[float]]:
    r = server.request("GET", f"/api/runs/{rid}/snapshots/weights", params={"at": step})
    assert r.status_code == 200, r.text
    return r.json()["data"]["params"]


def losses(server: Server, rid: str) -> list[float]:
    return [
        e["data"]["train_loss"]
        for e in server.events(rid)
        if e["type"] == "metrics" and "train_loss" in e["data"]
    ]


def step(server: Server, rid: str, n: int) -> None:
    r = server.request("POST", f"/api/runs/{rid}/step", json={"n": n})
    assert r.status_code == 200, r.text


def test_a_weight_set_by_hand_is_an_event_and_the_next_frame(server: Server) -> None:
    rid = paused(server, "moons", steps=50)
    before = weights_at(server, rid, 0)["0.weight"]  # 16 x 2, row-major
    r = set_weight(server, rid, "0.weight", [3, 1], 0.75)
    assert r.status_code == 201, r.text
    edit = r.json()
    assert edit == {
        "step": 0, "what": "weight", "param": "0.weight", "index": [3, 1],
        "old": pytest.approx(before[3 * 2 + 1], abs=1e-6), "new": 0.75,
    }  # fmt: skip
    after = weights_at(server, rid, 0)["0.weight"]
    assert after[7] == 0.75 and after[:7] + after[8:] == before[:7] + before[8:]
    events = [e for e in server.events(rid) if e["type"] == "intervention"]
    assert len(events) == 1
    validate_event(events[0])
    listed = server.request("GET", f"/api/runs/{rid}/interventions").json()["interventions"]
    assert listed == [edit]
    step(server, rid, 1)  # training goes on from the edit
    assert weights_at(server, rid, 1)["0.weight"][7] != before[7]
    # The export carries the edit among the run's events.
    export = server.request("GET", f"/api/runs/{rid}/export", params={"format": "csv"}).text
    assert "intervention" in export
    # The module's server runs two at once: a paused run left behind would hold a slot.
    assert server.request("POST", f"/api/runs/{rid}/stop").status_code == 200


def test_bad_edits_are_refused_naming_what_to_fix(server: Server) -> None:
    rid = paused(server, "moons", steps=50)
    cases = [
        (("nope", [0], 1.0), 422, "no parameter 'nope'"),
        (("0.weight", [16, 0], 1.0), 422, "index: [16, 0] is not inside '0.weight'"),
        (("0.weight", [0], 1.0), 422, "of shape [16, 2]"),
    ]
    for (param, index, value), status, text in cases:
        r = set_weight(server, rid, param, index, value)
        assert r.status_code == status and text in r.text, r.text
    for bad in ("NaN", "1e400", "2e6"):
        body = f'{{"param": "0.weight", "index": [0, 0], "value": {bad}}}'
        r = server.request(
            "POST",
            f"/api/runs/{rid}/interventions",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and "value" in r.text, r.text
    r = server.request("POST", f"/api/runs/{rid}/interventions", json={"param": "x", "extra": 1})
    assert r.status_code == 422
    server.request("POST", f"/api/runs/{rid}/stop")
    r = set_weight(server, rid, "0.weight", [0, 0], 1.0)
    assert r.status_code == 409 and "pause" in r.text, r.text
    assert not [e for e in server.events(rid) if e["type"] == "intervention"]


def test_training_continues_from_the_edit_bit_for_bit(server: Server) -> None:
    """The napkin neuron edited to w0 = 0.5 at step 0 trains exactly as one that started there."""
    start = [0.98, 0.4, 0.86, -0.08]
    edited = paused(server, "napkin-average", steps=6)
    r = set_weight(server, edited, "w0", [], 0.5)
    assert r.status_code == 201 and r.json()["old"] == 0.98, r.text
    twin = paused(server, "napkin-average", steps=6, model={"start_weights": [0.5, *start[1:]]})
    for rid in (edited, twin):
        step(server, rid, 3)
    assert losses(server, edited) == losses(server, twin)
    # A crash after the edit: the resumed run restores the edited checkpoint and goes on
    # exactly as the twin does.
    pid = server.run(edited)["pid"]
    os.kill(pid, signal.SIGKILL)
    server.wait_for(edited, lambda r: r["state"] in ("crashed", "interrupted"))
    assert server.request("POST", f"/api/runs/{edited}/resume").status_code == 200
    server.wait_for(edited, lambda r: r["state"] == "finished")
    server.request("POST", f"/api/runs/{twin}/resume")
    server.wait_for(twin, lambda r: r["state"] == "finished")
    assert weights_at(server, edited, 6) == weights_at(server, twin, 6)
    assert losses(server, edited)[-3:] == losses(server, twin)[-3:]
