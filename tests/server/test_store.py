"""The SQLite store, on real database files."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradscope.server.store import Store
from gradscope.server.store.schema import (
    INTERRUPTED_MESSAGE,
    RUN_STATES,
    RunRecord,
)


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "data")
    yield s
    s.close()


def new_run(store: Store, **kw) -> RunRecord:
    args = {"preset": "moons", "name": None, "source": "server", "total_steps": 100}
    return store.create_run({"lr": 0.1}, **(args | kw))


def metrics(n: int, start: int = 0) -> list[dict]:
    return [
        {"type": "metrics", "step": i, "t": 1.0, "data": {"train_loss": 1.0 / (i + 1)}}
        for i in range(start, start + n)
    ]


# -- runs -----------------------------------------------------------------------------------


def test_create_get_and_list_runs(store: Store) -> None:
    a = new_run(store, name="first", source="cli", total_steps=7)
    b = new_run(store, preset=None)
    assert len(a.id) == 12 and a.id != b.id
    assert (a.name, a.source, a.total_steps, a.state, a.last_seq) == (
        "first",
        "cli",
        7,
        "queued",
        0,
    )
    assert a.config == {"lr": 0.1} and a.step == 0 and a.started_at is None
    assert b.name and b.preset is None
    assert store.get_run(a.id) == a
    assert store.get_run("0123456789ab") is None
    assert [r.id for r in store.list_runs()] == [b.id, a.id]
    assert [r.id for r in store.list_runs(limit=1)] == [b.id]
    assert a.to_dict()["config"] == {"lr": 0.1} and a.to_dict()["id"] == a.id
    with pytest.raises(ValueError, match="source"):
        new_run(store, source="web")


def test_update_run_sets_known_columns_only(store: Store) -> None:
    run = new_run(store)
    updated = store.update_run(run.id, step=5, epoch=1, pid=42, checkpoint="c.npz", config={"x": 1})
    assert (updated.step, updated.epoch, updated.pid, updated.checkpoint) == (5, 1, 42, "c.npz")
    assert updated.config == {"x": 1} and updated.updated_at >= run.updated_at
    assert store.get_run(run.id) == updated
    with pytest.raises(ValueError, match="colour"):
        store.update_run(run.id, colour="red")
    with pytest.raises(ValueError, match="set_state"):
        store.update_run(run.id, state="running")
    with pytest.raises(ValueError, match="last_seq"):
        store.update_run(run.id, last_seq=99)
    assert store.get_run(run.id) == updated
    assert store.update_run("0123456789ab", step=1) is None


def test_set_state_updates_times_errors_and_writes_a_state_event(store: Store) -> None:
    run = new_run(store)
    assert store.set_state(run.id, "running")
    started = store.get_run(run.id).started_at
    assert started is not None
    assert store.set_state(run.id, "paused") and store.set_state(run.id, "running")
    assert store.get_run(run.id).started_at == started  # only the first "running" sets it
    store.update_run(run.id, step=12)
    assert store.set_state(run.id, "failed", message="loss is nan", op="log", traceback="tb")
    done = store.get_run(run.id)
    assert (done.state, done.error, done.error_op, done.traceback) == (
        "failed",
        "loss is nan",
        "log",
        "tb",
    )
    assert done.finished_at is not None and done.last_seq == 4
    events = store.events(run.id)
    assert [e["data"]["state"] for e in events] == ["running", "paused", "running", "failed"]
    assert events[-1]["type"] == "state" and events[-1]["step"] == 12
    assert events[-1]["data"] == {"state": "failed", "message": "loss is nan", "op": "log"}
    assert events[0]["data"] == {"state": "running"}


def test_set_state_only_from_refuses_without_changing_anything(store: Store) -> None:
    run = new_run(store)
    counter = store.change_counter()
    assert not store.set_state(run.id, "paused", only_from={"running"})
    assert store.get_run(run.id) == run and store.events(run.id) == []
    assert store.change_counter() == counter
    assert store.set_state(run.id, "running", only_from={"queued"})
    assert store.get_run(run.id).state == "running"
    assert not store.set_state("0123456789ab", "running")
    with pytest.raises(ValueError, match="unknown run state"):
        store.set_state(run.id, "exploded")
    assert set(RUN_STATES) >= {"queued", "interrupted"}


# -- events ---------------------------------------------------------------------------------


def test_seqs_are_consecutive_across_appends_and_state_changes(store: Store) -> None:
    run = new_run(store)
    assert store.append_events(run.id, metrics(3)) == 3
    assert store.set_state(run.id, "running")
    assert store.append_events(run.id, []) == 4
    assert store.append_events(run.id, metrics(5, 3), {"step": 8, "epoch": 2}) == 9
    assert store.set_state(run.id, "finished")
    seqs = [e["seq"] for e in store.events(run.id)]
    assert seqs == list(range(1, 11))
    rec = store.get_run(run.id)
    assert (rec.last_seq, rec.step, rec.epoch) == (10, 8, 2)
    other = new_run(store)
    assert store.last_seqs([run.id, other.id, "0123456789ab"]) == {run.id: 10, other.id: 0}


def test_append_events_checks_its_input_before_writing(store: Store) -> None:
    run = new_run(store)
    with pytest.raises(ValueError, match="colour"):
        store.append_events(run.id, metrics(2), {"colour": 1})
    with pytest.raises(KeyError):
        store.append_events("0123456789ab", metrics(2))
    assert store.events(run.id) == [] and store.get_run(run.id).last_seq == 0


def test_events_since_limit_and_types(store: Store) -> None:
    run = new_run(store)
    store.append_events(
        run.id,
        [
            {"type": "metrics", "step": 1, "t": 10.0, "data": {"train_loss": 0.5}},
            {"type": "weights", "step": 1, "t": 10.5, "data": {"params": {"w": [1.0, 2.0]}}},
            {"type": "metrics", "step": 2, "t": 11.0, "data": {"train_loss": 0.25}},
            {"type": "health", "step": 2, "t": 11.5, "data": {}},
        ],
    )
    everything = store.events(run.id)
    assert everything[1] == {
        "seq": 2,
        "type": "weights",
        "step": 1,
        "t": 10.5,
        "data": {"params": {"w": [1.0, 2.0]}},
    }
    assert [e["seq"] for e in store.events(run.id, since=2)] == [3, 4]
    assert [e["seq"] for e in store.events(run.id, limit=3)] == [1, 2, 3]
    assert [e["seq"] for e in store.events(run.id, since=1, limit=2)] == [2, 3]
    assert [e["seq"] for e in store.events(run.id, types=["metrics"])] == [1, 3]
    assert [e["seq"] for e in store.events(run.id, types=("metrics", "health"), since=1)] == [3, 4]
    assert store.events(run.id, types=[]) == []
    assert store.events(run.id, since=4) == []
    assert store.events("0123456789ab") == []


def test_latest_event_at_step(store: Store) -> None:
    run = new_run(store)
    ev = [
        {"type": "weights", "step": s, "data": {"v": v}}
        for s, v in [(0, 0), (5, 1), (5, 2), (10, 3)]
    ]
    store.append_events(run.id, [*ev, {"type": "metrics", "step": 20, "data": {}}])
    assert store.latest_event(run.id, "weights")["data"] == {"v": 3}
    assert store.latest_event(run.id, "weights", at_step=9)["data"] == {"v": 2}  # tie: last seq
    assert store.latest_event(run.id, "weights", at_step=5)["data"] == {"v": 2}
    assert store.latest_event(run.id, "weights", at_step=4)["data"] == {"v": 0}
    assert store.latest_event(run.id, "weights", at_step=-1) is None
    assert store.latest_event(run.id, "boundary") is None
    assert store.latest_event(run.id, "weights", at_step=10)["seq"] == 4


def test_nan_and_inf_are_stored_as_strings(store: Store) -> None:
    run = store.create_run(
        {"lr": math.inf, "ok": 1.5}, preset=None, name="x", source="cli", total_steps=1
    )
    assert store.get_run(run.id).config == {"lr": "inf", "ok": 1.5}
    data = {
        "loss": math.nan,
        "nested": {"a": [1.0, -math.inf, (math.inf, 2)]},
        "array": np.array([1.0, np.nan], dtype=np.float32),
        "scalar": np.float32(0.5),
    }
    store.append_events(run.id, [{"type": "metrics", "step": 0, "data": data}])
    got = store.events(run.id)[0]["data"]
    assert got == {
        "loss": "nan",
        "nested": {"a": [1.0, "-inf", ["inf", 2]]},
        "array": [1.0, "nan"],
        "scalar": 0.5,
    }
    assert store.append_events(run.id, [{"type": "m", "data": {"arr": np.arange(3)}}]) == 2
    assert store.events(run.id, since=1)[0]["data"] == {"arr": [0, 1, 2]}


# -- change tracking, deletion, restart -----------------------------------------------------


def test_runs_changed_since_reports_updates_and_deletions(store: Store) -> None:
    start = store.change_counter()
    a, b, c = new_run(store), new_run(store), new_run(store)
    counter, changed, deleted = store.runs_changed_since(start)
    assert counter == store.change_counter() > start
    assert {r.id for r in changed} == {a.id, b.id, c.id} and deleted == []
    assert store.runs_changed_since(counter) == (counter, [], [])
    store.update_run(a.id, step=3)
    store.set_state(b.id, "running")
    assert store.delete_run(c.id)
    counter2, changed, deleted = store.runs_changed_since(counter)
    assert counter2 > counter
    assert {r.id: r.state for r in changed} == {a.id: "queued", b.id: "running"}
    assert next(r for r in changed if r.id == a.id).step == 3
    assert deleted == [c.id]
    store.append_events(a.id, metrics(1))
    counter3, changed, deleted = store.runs_changed_since(counter2)
    assert counter3 > counter2 and [r.id for r in changed] == [a.id] and deleted == []


def test_delete_run_removes_events_and_checkpoints(store: Store) -> None:
    run, keep = new_run(store), new_run(store)
    store.append_events(run.id, metrics(5))
    store.append_events(keep.id, metrics(2))
    ckpt = store.checkpoint_dir(run.id)
    assert ckpt == store.data_dir / "checkpoints" / run.id
    ckpt.mkdir(parents=True)
    (ckpt / "step-5.npz").write_bytes(b"x")
    assert store.delete_run(run.id)
    assert store.get_run(run.id) is None and store.events(run.id) == []
    assert not ckpt.exists()
    assert not store.delete_run(run.id)
    assert len(store.events(keep.id)) == 2 and store.get_run(keep.id) is not None
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT count(*) FROM events WHERE run_id = ?", (run.id,)).fetchone() == (
        0,
    )
    conn.close()


def test_mark_interrupted_after_a_restart(store: Store) -> None:
    running, paused, queued, finished, alive = (new_run(store) for _ in range(5))
    for run, states in [
        (running, ["running"]),
        (paused, ["running", "paused"]),
        (finished, ["running", "finished"]),
        (alive, ["running"]),
    ]:
        for state in states:
            store.set_state(run.id, state)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.update_run(alive.id, pid=sleeper.pid)  # a worker that is still there
        store.update_run(running.id, pid=2**22 + 12345)  # beyond pid_max: gone
        assert sorted(store.mark_interrupted()) == sorted([running.id, paused.id])
    finally:
        sleeper.kill()
        sleeper.wait()
    for run in (running, paused):
        rec = store.get_run(run.id)
        assert rec.state == "interrupted"
        last = store.events(run.id)[-1]
        assert last["data"] == {"state": "interrupted", "message": INTERRUPTED_MESSAGE}
        assert last["seq"] == rec.last_seq
    assert store.get_run(queued.id).state == "queued"
    assert store.get_run(finished.id).state == "finished"
    assert store.get_run(alive.id).state == "running"
    assert store.mark_interrupted() == [alive.id]  # its worker is gone now
    assert store.mark_interrupted() == []


# -- validation and failures ----------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../etc", "0123456789AB", "0123456789a", "", "0123456789abc"])
def test_bad_run_ids_are_refused(store: Store, bad: str) -> None:
    calls = [
        lambda: store.checkpoint_dir(bad),
        lambda: store.get_run(bad),
        lambda: store.update_run(bad, step=1),
        lambda: store.set_state(bad, "running"),
        lambda: store.append_events(bad, metrics(1)),
        lambda: store.events(bad),
        lambda: store.latest_event(bad, "metrics"),
        lambda: store.last_seqs([bad]),
        lambda: store.delete_run(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="not a run id"):
            call()
