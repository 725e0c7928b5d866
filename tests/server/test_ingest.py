"""The ingest API: external runs, batches stored once (same id, or steps already committed),
422s naming the field of a malformed batch, the websocket, and the reaper's crash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import InProcess, in_process

MAX_EVENTS = 50
WS = InProcess.base_url.replace("http", "ws", 1)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[InProcess]:
    data = tmp_path_factory.mktemp("ingest") / "data"
    with in_process(data, real_mnist, max_ingest_events=MAX_EVENTS, ingest_timeout=30) as a:
        yield a


def external(app: InProcess, **body: Any) -> dict[str, Any]:
    r = app.request("POST", "/api/ingest/runs", json={"name": "script", **body})
    assert r.status_code == 201, r.text
    return r.json()


def steps(first: int, last: int, epoch: int = 0) -> list[dict[str, Any]]:
    return [
        {"step": s, "data": {"epoch": epoch, "train_loss": 1 / s}} for s in range(first, last + 1)
    ]


def post(app: InProcess, run_id: str, batch_id: str, events: list[dict[str, Any]]) -> Any:
    body = {"batch_id": batch_id, "events": events}
    return app.request("POST", f"/api/ingest/runs/{run_id}/events", json=body)


def losses(app: InProcess, run_id: str) -> list[tuple[int, float]]:
    series = app.request("GET", f"/api/runs/{run_id}/metrics").json()["series"]
    s = series.get("train_loss", {"step": [], "value": []})
    return list(zip(s["step"], s["value"], strict=True))


def test_an_external_run_stores_each_batch_once(app: InProcess) -> None:
    run = external(app, config={"lr": 0.01, "net": "mine"}, tags=["laptop"])
    assert (run["source"], run["state"], run["tags"]) == ("external", "running", ["laptop"])
    assert run["config"] == {"lr": 0.01, "net": "mine"} and run["heartbeat"] > 0
    first = post(app, run["id"], "b1", steps(1, 10))
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 10 and not first.json()["duplicate"]
    again = post(app, run["id"], "b1", steps(1, 10))  # the same batch, retried
    assert again.status_code == 200 and again.json()["duplicate"]
    # Its answer lost and this server's memory with it: the steps are committed already.
    other_id = post(app, run["id"], "b1-resent", steps(1, 10))
    assert other_id.json()["duplicate"] and other_id.json()["accepted"] == 0
    epoch = [{"step": 10, "data": {"epoch": 1, "test_loss": 0.5, "test_acc": 0.75}}]
    assert post(app, run["id"], "b2", steps(11, 12, epoch=1)).json()["accepted"] == 2
    assert losses(app, run["id"]) == [(s, 1 / s) for s in range(1, 13)]
    # A batch that reaches back into committed steps is no retry: refused, nothing stored.
    r = post(app, run["id"], "b3", epoch + steps(13, 14))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "events.0.step"
    assert len(losses(app, run["id"])) == 12
    done = app.request("POST", f"/api/ingest/runs/{run['id']}/finish", json={})
    assert done.status_code == 200 and done.json()["state"] == "finished"
    assert done.json()["summary"]["train_loss"]["final"] == pytest.approx(1 / 12)
    late = post(app, run["id"], "b4", steps(13, 13))
    assert late.status_code == 409 and "finished" in late.json()["detail"]


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([{"step": 1, "data": {"epoch": 0, "loss": 0.1}}], "events.0.data.loss"),
        ([{"step": 1, "data": {"epoch": 0, "train_loss": "low"}}], "events.0.data.train_loss"),
        ([{"step": 1, "data": {"train_loss": 0.1}}], "events.0.data.epoch"),
        ([{"step": "1", "data": {"epoch": 0, "train_loss": 0.1}}], "events.0.step"),
        ([{"step": -1, "data": {"epoch": 0, "train_loss": 0.1}}], "events.0.step"),
        ([{"step": 1, "type": "weights", "data": {}}], "events.0.type"),
        ([*steps(2, 3), *steps(1, 1)], "events.2.step"),
        (steps(1, MAX_EVENTS + 1), "events"),
        ([], "events"),
    ],
)
def test_a_malformed_batch_is_a_422_naming_its_field(
    app: InProcess, events: list[dict[str, Any]], field: str
) -> None:
    run = external(app)
    r = post(app, run["id"], "bad", events)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field, r.text
    assert losses(app, run["id"]) == []


def test_only_external_runs_take_events_and_ids_are_checked(app: InProcess) -> None:
    server_run = app.create("xor", steps=2)
    r = post(app, server_run["id"], "b", steps(1, 1))
    assert r.status_code == 409 and "ingest" in r.json()["detail"]
    assert post(app, "0123456789ab", "b", steps(1, 1)).status_code == 404
    bad_id = post(app, external(app)["id"], "no spaces", steps(1, 1))
    assert bad_id.status_code == 422 and bad_id.json()["detail"][0]["field"] == "batch_id"


def test_a_silent_run_is_reaped_crashed_and_its_next_batch_revives_it(app: InProcess) -> None:
    run = external(app)
    ingest = app.app.state.ingest
    assert run["id"] not in ingest.reap()  # heard from just now
    assert run["id"] in ingest.reap(now=time.time() + 31)  # as if 31 s passed in silence
    crashed = app.run(run["id"])
    assert crashed["state"] == "crashed" and "GRADSCOPE_INGEST_TIMEOUT" in crashed["error"]
    assert post(app, run["id"], "late", steps(1, 3)).json()["state"] == "running"
    assert app.run(run["id"])["error"] is None


def test_batches_over_a_websocket_are_answered_in_order(app: InProcess) -> None:
    run = external(app)
    with app.client.websocket_connect(f"{WS}/ws/ingest/runs/{run['id']}") as ws:
        ws.send_json({"batch_id": "w1", "events": steps(1, 5)})
        assert ws.receive_json()["accepted"] == 5
        ws.send_json({"batch_id": "w1", "events": steps(1, 5)})
        assert ws.receive_json()["duplicate"] is True
        ws.send_json({"batch_id": "w2", "events": [{"step": 6, "data": {"epoch": 0}}]})
        error = ws.receive_json()["error"]
        assert error[0]["field"] == "events.0.data.test_loss", error
    assert [s for s, _ in losses(app, run["id"])] == [1, 2, 3, 4, 5]
