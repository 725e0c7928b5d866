"""History at any length: exact min/max buckets at every zoom, frames, the routes, the hello.

Runs are synthetic and written through Store.append_events as the loop writes them: steps as
StepLoss tuples in commits of ~300, test figures every epoch as dict events, weights and
health every so many steps (some encoded early with Store.encode, as the loop does).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.sync.client import connect

from gradscope.server.store import Store

from .conftest import Server, in_process

EPOCH = 250  # steps an epoch: test figures at each end
SPIKE = 12_345
Truth = dict[str, tuple[np.ndarray, np.ndarray]]  # series -> (steps, values) in seq order


def write_run(
    store: Store,
    steps: int,
    record_every: int,
    spike: int | None = None,
    dense: range = range(0),
    truth: bool = True,
) -> tuple[str, Truth]:
    """A finished run of `steps` steps; records every `record_every` steps and each step of
    `dense`. Its samples by series, as the store should read them (truth=False: the loss's)."""
    run_id = store.create_run({}, preset=None, name="long", source="cli", total_steps=steps).id
    store.set_state(run_id, "running")
    rng = np.random.default_rng(steps)
    loss = 1 / np.sqrt(1 + np.arange(steps + 1)) + 0.05 * rng.random(steps + 1)
    loss[::997] = np.nan  # not samples
    if spike is not None:
        loss[spike] = 50.0
    samples: dict[str, tuple[list[int], list[float]]] = {}

    def seen(name: str, step: int, value: Any) -> None:
        if truth and value is not None and np.isfinite(value):
            samples.setdefault(name, ([], []))[0].append(step)
            samples[name][1].append(float(value))

    values = loss.tolist()
    for first in range(1, steps + 1, 300):
        batch: list[Any] = []
        for s in range(first, min(first + 300, steps + 1)):
            batch.append((s, float(s), s // EPOCH, values[s]))
            if s % EPOCH == 0:
                test = {"epoch": s // EPOCH, "test_loss": 2 * values[s], "test_acc": s % 7 / 7}
                batch.append({"type": "metrics", "step": s, "data": test})
                seen("test_loss", s, test["test_loss"])
                seen("test_acc", s, test["test_acc"])
            if s % record_every == 0 or s in dense:
                batch += record(s, rng.standard_normal(26), seen, store)
        store.append_events(run_id, batch, {"step": min(first + 299, steps)})
    store.set_state(run_id, "finished")
    finite = np.isfinite(loss[1:])
    out = {"train_loss": (np.arange(1, steps + 1)[finite], loss[1:][finite])}
    for name, (st, v) in samples.items():
        order = np.argsort(st, kind="stable")  # by step; seq order at a tie
        out[name] = np.array(st)[order], np.array(v)[order]
    return run_id, out


def record(step: int, x: np.ndarray, seen: Any, store: Store) -> list[dict[str, Any]]:
    """A weights and a health event (the loop encodes them early: every other one here)."""
    w = x.tolist()
    if step % 3 == 0:
        w[1] = float("nan")  # keeps its place among the 24 shown
    params = {"w": w[:3], "b": [w[3]], "big": w[4:26], "late": [1.0]}  # 3 + 1 + 20 shown
    names = [f"weight/w[{i}]" for i in range(3)] + ["weight/b"]
    names += [f"weight/big[{i}]" for i in range(20)]
    for name, value in zip(names, w[:24], strict=True):
        seen(name, step, value)
    ratio = None if step % 2 else abs(w[0]) / 100
    health = {"grad_norm": {"w": abs(w[1])}, "update_ratio": {"w": ratio}, "dead_relu": {"1": 0.5}}
    seen("grad_norm/w", step, health["grad_norm"]["w"])
    seen("update_ratio/w", step, ratio)
    seen("dead_relu/1", step, 0.5)
    events = [
        {
            "type": "weights",
            "step": step,
            "data": {"params": params, "shapes": {}, "structure": {}},
        },
        {"type": "health", "step": step, "data": health},
    ]
    return [store.encode(e) for e in events] if step % 2 else events  # type: ignore[misc]


def check(history: dict[str, Any], truth: Truth) -> None:
    """Every bucket holds exactly the samples from its step to the next bucket's: its first
    step, min, max and last are theirs (so the greatest max is the range's maximum)."""
    s0, s1 = history["from"], history["to"]
    for name, (steps, values) in truth.items():
        inside = (steps >= s0) & (steps <= s1)
        steps, values = steps[inside], values[inside]
        got = history["series"].get(name)
        if not len(steps):
            assert got is None, name
            continue
        assert got is not None, (name, s0, s1)
        assert 0 < len(got["step"]) <= history["points"]
        cuts = np.searchsorted(steps, got["step"])
        ends = np.append(cuts[1:], len(steps)) - 1
        assert cuts[0] == 0 and np.all(np.diff(cuts) > 0) and cuts[-1] < len(steps), name
        assert np.array_equal(steps[cuts], got["step"]), name
        assert np.array_equal(np.minimum.reduceat(values, cuts), got["min"]), name
        assert np.array_equal(np.maximum.reduceat(values, cuts), got["max"]), name
        assert np.array_equal(values[ends], got["last"]), name
        assert max(got["max"]) == values.max()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, str, Truth]]:
    """20,000 steps, a one-step spike, records every 100 steps and at each of 60 steps."""
    store = Store(tmp_path_factory.mktemp("history") / "data")
    run_id, truth = write_run(store, 20_000, 100, SPIKE, dense=range(18_000, 18_060))
    yield store, run_id, truth
    store.close()


def test_the_summary_is_exact_at_every_zoom(run: tuple[Store, str, Truth]) -> None:
    store, run_id, truth = run
    whole = store.history(run_id)
    assert (whole["from"], whole["to"], whole["points"]) == (1, 20_000, 1000)
    assert set(whole["series"]) == set(truth)  # 24 weights, 3 health, 3 metrics
    assert max(whole["series"]["train_loss"]["max"]) == 50.0
    check(whole, truth)
    rng = np.random.default_rng(0)
    ranges = [
        (1, 20_000, 1000),  # 20 steps a bucket: level-16 blocks, cut at both ends
        (37, 19_961, 1000),
        (17, 19_990, 7),  # coarse blocks, cut by finer ones and raw steps at both ends
        (SPIKE, SPIKE, 5),  # one step
        (SPIKE - 3, SPIKE + 9, 1000),  # raw
        (17_990, 18_070, 10),  # the dense records: their blocks hold many samples
        (12_300, 12_400, 3),
        (0, 30_000, 10_000),
    ]
    for _ in range(40):
        a, b = sorted(rng.integers(0, 20_500, 2).tolist())
        ranges.append((a, b, int(rng.choice([1, 2, 13, 100, 999, 5000]))))
    for a, b, points in ranges:
        history = store.history(run_id, start=a, end=b, points=points)
        assert (history["from"], history["to"]) == (a, b)
        check(history, truth)
        if a <= SPIKE <= b:
            assert max(history["series"]["train_loss"]["max"]) == 50.0


def test_first_and_last_are_the_earliest_and_latest_samples(tmp_path: Path) -> None:
    store = Store(tmp_path)
    run_id = store.create_run({}, preset=None, name="t", source="cli", total_steps=9).id
    # Two commits with a step in common, in seq order: 5 then 7 at step 3.
    store.append_events(run_id, [(1, 0.0, 0, 2.0), (2, 0.0, 0, float("nan")), (3, 0.0, 0, 5.0)])
    store.append_events(run_id, [(3, 0.0, 0, 7.0), (4, 0.0, 0, -1.0), (5, 0.0, 0, 4.0)])
    one = store.history(run_id, points=1)["series"]["train_loss"]
    assert one == {"step": [1], "min": [-1.0], "max": [7.0], "last": [4.0]}
    at3 = store.history(run_id, start=3, end=3)["series"]["train_loss"]
    assert at3 == {"step": [3], "min": [5.0], "max": [7.0], "last": [7.0]}
    every = store.history(run_id)["series"]["train_loss"]  # NaN is no sample
    assert every == {
        "step": [1, 3, 4, 5],
        "min": [2.0, 5.0, -1.0, 4.0],
        "max": [2.0, 7.0, -1.0, 4.0],
        "last": [2.0, 7.0, -1.0, 4.0],
    }
    store.close()


def test_names_pick_series_and_unknown_ones_are_left_out(run: tuple[Store, str, Truth]) -> None:
    store, run_id, _ = run
    assert store.history(run_id, names=[])["series"] == {}
    picked = store.history(run_id, names=["test_loss", "weight/b", "no such"])["series"]
    assert sorted(picked) == ["test_loss", "weight/b"]
    assert store.history(run_id, names=["no such"])["series"] == {}
    # No [24] and no `late`: only the first 24 values are series; update ratios skip nulls.
    names = store.series_names(run_id)
    assert "weight/big[19]" in names and "weight/big[20]" not in names
    assert not any("late" in n for n in names)
    ratios = store.history(run_id, names=["update_ratio/w"], points=10_000)["series"]
    assert all(s % 2 == 0 for s in ratios["update_ratio/w"]["step"])


def test_frames_at_and_after(tmp_path: Path) -> None:
    store = Store(tmp_path)
    run_id = store.create_run({}, preset=None, name="f", source="cli", total_steps=300).id
    assert store.frame(run_id) is None
    events: list[Any] = [{"type": "graph", "step": 0, "data": {"g": 0}}]
    events += [(s, 0.0, 0, 1.0) for s in range(1, 101)]
    events += [{"type": "weights", "step": 100, "data": {"params": {"w": [1.0]}}}]
    events += [(s, 0.0, 0, 1.0) for s in range(101, 151)]
    events += [{"type": "confusion", "step": 120, "data": {"c": 1}}]  # not a frame kind
    events += [{"type": "boundary", "step": 150, "data": {"b": 1}}]
    events += [{"type": "weights", "step": 200, "data": {"params": {"w": [2.0]}}}]
    store.append_events(run_id, events)
    kinds = lambda frame: {e["type"]: e["step"] for e in frame["events"]}  # noqa: E731
    head = store.frame(run_id)
    assert head["step"] == 200
    assert kinds(head) == {"graph": 0, "weights": 200, "confusion": 120, "boundary": 150}
    assert [e["seq"] for e in head["events"]] == sorted(e["seq"] for e in head["events"])
    assert head["events"][0] == store.events(run_id, limit=1)[0]  # full events, as stored
    at = store.frame(run_id, at=170)
    assert at["step"] == 150 and kinds(at) == {
        "graph": 0,
        "weights": 100,
        "confusion": 120,
        "boundary": 150,
    }
    assert store.frame(run_id, at=100)["step"] == 100
    assert store.frame(run_id, at=99) is None  # the graph is a snapshot, not a frame step
    assert store.frame(run_id, after=100)["step"] == 150
    assert store.frame(run_id, after=150)["step"] == 200
    assert store.frame(run_id, after=200) is None
    assert store.frame(run_id, after=0)["step"] == 100
    store.close()


def test_a_run_from_before_the_summaries_is_rebuilt_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    run_id, truth = write_run(store, 3000, 50, spike=2000)
    before = [
        store.history(run_id, start=a, end=b, points=p)
        for a, b, p in ((None, None, 1000), (17, 2990, 7))
    ]
    store.close()
    # The file as schema 2 left it: no series tables, and version 2.
    conn = sqlite3.connect(tmp_path / "data" / "gradscope.db")
    for table in ("series_blocks", "series_names", "series_pending"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = Store(tmp_path / "data")  # migrates: the run waits for its rebuild
    conn = sqlite3.connect(tmp_path / "data" / "gradscope.db")
    assert conn.execute("SELECT run_id FROM series_pending").fetchall() == [(run_id,)]
    again = [
        store.history(run_id, start=a, end=b, points=p)
        for a, b, p in ((None, None, 1000), (17, 2990, 7))
    ]
    assert again == before
    check(again[0], truth)
    assert conn.execute("SELECT count(*) FROM series_pending").fetchone() == (0,)
    # Deleting the run deletes its summaries.
    assert conn.execute("SELECT count(*) FROM series_blocks").fetchone()[0] > 0
    assert store.delete_run(run_id)
    for table in ("series_blocks", "series_names", "series_pending"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    conn.close()
    store.close()


def test_the_routes_answer_and_refuse_naming_the_field(tmp_path: Path, real_mnist: Path) -> None:
    with in_process(tmp_path / "data", real_mnist) as app:
        store = Store(app.data_dir)
        run_id, truth = write_run(store, 2000, 100, spike=1500)
        empty = store.create_run({}, preset=None, name="e", source="cli", total_steps=1).id
        store.close()
        base = f"/api/runs/{run_id}"
        r = app.request(
            "GET",
            f"{base}/history",
            params={"names": "train_loss,x", "from": 1000, "to": 2000, "points": 50},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["run_id"] == run_id and (body["from"], body["to"], body["points"]) == (
            1000,
            2000,
            50,
        )
        assert (
            list(body["series"]) == ["train_loss"]
            and max(body["series"]["train_loss"]["max"]) == 50.0
        )
        check(body, {"train_loss": truth["train_loss"]})
        assert set(app.request("GET", f"{base}/history").json()["series"]) == set(truth)
        for params, field in (
            ({"points": 0}, "points"),
            ({"points": 10_001}, "points"),
            ({"from": 10, "to": 9}, "from"),
            ({"from": -1}, "from"),
            ({"to": -5}, "to"),
            ({"to": 2**63}, "to"),
        ):
            r = app.request("GET", f"{base}/history", params=params)
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, (
                params,
                r.text,
            )
        r = app.request("GET", f"{base}/frame", params={"at": 5, "after": 3})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "after", r.text
        r = app.request("GET", f"{base}/frame", params={"at": -1})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "at", r.text
        frame = app.request("GET", f"{base}/frame", params={"at": 1550}).json()
        assert frame["run_id"] == run_id and frame["step"] == 1500
        assert {e["type"] for e in frame["events"]} == {"weights", "health"}
        assert app.request("GET", f"{base}/frame", params={"after": 1500}).json()["step"] == 1600
        assert app.request("GET", f"{base}/frame", params={"after": 2000}).status_code == 404
        assert app.request("GET", f"/api/runs/{empty}/frame").status_code == 404
        assert app.request("GET", f"/api/runs/{empty}/history").json()["series"] == {}
        for path in ("history", "frame"):
            assert app.request("GET", f"/api/runs/0123456789ab/{path}").status_code == 404


# -- a million steps over a real websocket ---------------------------------------------------

MILLION = 1_000_000


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, Truth]]:
    """A finished 1,000,000-step run (records every 1000 steps), served by a real server."""
    data = tmp_path_factory.mktemp("million") / "data"
    store = Store(data)
    run_id, truth = write_run(store, MILLION, 1000, spike=MILLION // 3 + 7, truth=False)
    store.close()
    server = Server(data).start()
    yield server, run_id, truth
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


def test_a_million_step_run_opens_from_one_small_hello(
    million: tuple[Server, str, Truth],
) -> None:
    server, run_id, _ = million
    t0 = time.monotonic()
    with connect(
        f"{server.ws_url}/ws/runs/{run_id}", open_timeout=30, max_queue=None, max_size=None
    ) as ws:
        text = ws.recv(timeout=30)
        opened = time.monotonic() - t0
        with pytest.raises(TimeoutError):  # a finished run: the page is current already
            ws.recv(timeout=0.5)
    hello = json.loads(text)
    assert len(text.encode()) < 1_000_000, len(text)
    assert hello["run"]["state"] == "finished" and hello["run"]["step"] == MILLION
    history = hello["history"]
    assert (history["from"], history["to"]) == (1, MILLION)
    loss = history["series"]["train_loss"]
    assert 900 <= len(loss["step"]) <= 1000 and max(loss["max"]) == 50.0
    assert len(history["series"]) == 30 and all(
        len(s["step"]) >= 100 for s in history["series"].values()
    )
    frame = hello["frame"]
    assert frame["step"] == MILLION and {e["type"] for e in frame["events"]} == {
        "weights",
        "health",
    }
    assert opened < 30  # the old replay took minutes (bench/history.py times it)
    # A reconnect is replayed from where it was, no gap, no duplicate.
    since = hello["last_seq"] - 3
    with connect(
        f"{server.ws_url}/ws/runs/{run_id}?since={since}", open_timeout=30, max_size=None
    ) as ws:
        json.loads(ws.recv(timeout=30))
        events = json.loads(ws.recv(timeout=30))["events"]
    assert [e["seq"] for e in events] == [since + 1, since + 2, since + 3]
    assert events[-1]["data"] == {"state": "finished"}


def test_a_million_steps_at_every_zoom_over_rest(million: tuple[Server, str, Truth]) -> None:
    server, run_id, truth = million
    rng = np.random.default_rng(1)
    ranges = [(1, MILLION, 10), (12_345, 987_654, 7), (300_001, 700_000, 1000)]
    ranges += [(MILLION // 3, MILLION // 3 + 10, 1000), (MILLION - 20, MILLION, 3)]
    for _ in range(5):
        a, b = sorted(rng.integers(1, MILLION, 2).tolist())
        ranges.append((a, b, int(rng.choice([1, 100, 1000, 4000]))))
    for a, b, points in ranges:
        params = {"names": "train_loss", "from": a, "to": b, "points": points}
        r = server.request("GET", f"/api/runs/{run_id}/history", params=params)
        assert r.status_code == 200, r.text
        check(r.json(), truth)  # exact: the spike shows in every range that holds it
