"""Packed rows: a commit's per-step losses stored as one row, read back as one event per step."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gradscope.server.runs.config import resolve_config
from gradscope.server.runs.loop import TrainingLoop
from gradscope.server.runs.trainers import build_trainer
from gradscope.server.store import Store
from gradscope.server.store.encoding import PACK_DTYPE, pack_losses
from gradscope.server.store.schema import MIGRATIONS


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "data")
    yield s
    s.close()


def run_id(store: Store) -> str:
    return store.create_run({}, preset=None, name="p", source="cli", total_steps=10).id


def rows(store: Store, rid: str) -> list[tuple]:
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(
            "SELECT seq, type, n FROM events WHERE run_id = ? ORDER BY seq", (rid,)
        ).fetchall()
    finally:
        conn.close()


def steps(first: int, last: int, epoch: int = 0) -> list[tuple[int, float, int, float]]:
    return [(s, 100.0 + s, epoch, 1.0 / s) for s in range(first, last + 1)]


def test_packed_losses_read_back_as_one_event_per_step_in_seq_order(store: Store) -> None:
    rid = run_id(store)
    other = {"type": "health", "step": 3, "t": 5.0, "data": {"g": 1}}
    last = store.append_events(rid, [pack_losses(steps(1, 3)), other, pack_losses(steps(4, 6))])
    assert last == 7
    assert store.get_run(rid).last_seq == 7
    # three rows on disk, seven events read back
    assert rows(store, rid) == [(3, "metrics", 3), (4, "health", 1), (7, "metrics", 3)]
    events = store.events(rid)
    assert [e["seq"] for e in events] == list(range(1, 8))
    assert [e["step"] for e in events] == [1, 2, 3, 3, 4, 5, 6]
    assert events[0] == {
        "seq": 1,
        "type": "metrics",
        "step": 1,
        "t": 101.0,
        "data": {"epoch": 0, "train_loss": 1.0},
    }
    assert events[5]["data"] == {"epoch": 0, "train_loss": 1.0 / 5}
    # the next plain event continues after the pack's range
    assert store.append_events(rid, [other]) == 8


def test_since_limit_and_types_cut_through_a_pack(store: Store) -> None:
    rid = run_id(store)
    store.append_events(rid, [pack_losses(steps(1, 5)), {"type": "health", "step": 5, "data": {}}])
    assert [e["seq"] for e in store.events(rid, since=2)] == [3, 4, 5, 6]
    assert [e["seq"] for e in store.events(rid, since=2, limit=2)] == [3, 4]
    assert [e["seq"] for e in store.events(rid, limit=3)] == [1, 2, 3]
    assert [e["seq"] for e in store.events(rid, since=4, types=["metrics"])] == [5]
    assert [e["seq"] for e in store.events(rid, since=3, types=["health"])] == [6]
    assert store.events(rid, since=6) == []
    # paging by the last seq seen gets every event exactly once
    seen, since = [], 0
    while page := store.events(rid, since=since, limit=2):
        seen += [e["seq"] for e in page]
        since = page[-1]["seq"]
    assert seen == list(range(1, 7))


def test_non_finite_losses_in_a_pack_are_strings(store: Store) -> None:
    rid = run_id(store)
    packed = pack_losses([(1, 1.0, 0, math.nan), (2, 2.0, 0, math.inf), (3, 3.0, 0, -math.inf)])
    assert (
        packed["pack"]
        == np.array(
            [(1, 1.0, 0, math.nan), (2, 2.0, 0, math.inf), (3, 3.0, 0, -math.inf)], PACK_DTYPE
        ).tobytes()
    )  # 32 bytes a step
    store.append_events(rid, [packed])
    assert [e["data"]["train_loss"] for e in store.events(rid)] == ["nan", "inf", "-inf"]


def test_a_version_1_database_is_migrated_and_its_events_still_read(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "gradscope.db")
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (id, name, config, state, source, created_at, updated_at, last_seq) "
        "VALUES ('0123456789ab', 'old', '{}', 'finished', 'cli', 0, 0, 1)"
    )
    conn.execute(
        "INSERT INTO events (run_id, seq, type, step, t, data) "
        "VALUES ('0123456789ab', 1, 'metrics', 1, 2.0, '{\"train_loss\": 0.5}')"
    )
    conn.commit()
    conn.close()
    store = Store(tmp_path)
    try:
        assert store.events("0123456789ab") == [
            {"seq": 1, "type": "metrics", "step": 1, "t": 2.0, "data": {"train_loss": 0.5}}
        ]
        store.append_events("0123456789ab", [pack_losses(steps(2, 3))])
        assert [e["seq"] for e in store.events("0123456789ab")] == [1, 2, 3]
        assert store.integrity_check() == "ok"
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "gradscope.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 5
    conn.close()


def test_a_training_loop_stores_few_rows_and_every_step_once(store: Store) -> None:
    config = resolve_config(
        "moons", {"steps": 300, "pace": None}, max_parameters=10**6, max_steps=10**6
    )
    rid = store.create_run(
        config.model_dump(), preset="moons", name=None, source="cli", total_steps=300
    ).id
    loop = TrainingLoop(store, rid, build_trainer(config, None), config)
    assert loop.run() == "finished"
    events = store.events(rid)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    per_step = [e for e in events if e["type"] == "metrics" and "train_loss" in e["data"]]
    assert [e["step"] for e in per_step] == list(range(1, 301))
    assert all(set(e["data"]) == {"epoch", "train_loss"} for e in per_step)
    assert all(e["data"]["epoch"] == e["step"] // config.steps_per_epoch() for e in per_step)
    # Every epoch's test figures, in step order among the per-step losses.
    per_epoch = config.steps_per_epoch()
    tests = [e for e in events if e["type"] == "metrics" and "test_loss" in e["data"]]
    ends = list(range(per_epoch, 301, per_epoch))
    assert [e["step"] for e in tests] == ends + ([300] if ends[-1] != 300 else [])
    metrics = [e for e in events if e["type"] == "metrics"]
    assert [e["step"] for e in metrics] == sorted(e["step"] for e in metrics)
    for e in tests:  # right after its epoch's last step
        i = metrics.index(e)
        assert metrics[i - 1]["step"] == e["step"] and "train_loss" in metrics[i - 1]["data"]
        assert set(e["data"]) >= {"epoch", "test_loss", "test_acc"}
    # Packed: a pack is cut only by the other event types, not by the epoch ends.
    metric_rows = [r for r in rows(store, rid) if r[1] == "metrics"]
    others = len(events) - len(metrics)
    assert len(metric_rows) <= others + 2, (len(metric_rows), others)
    assert len(rows(store, rid)) < len(events) / 3


def test_other_metrics_join_a_pack_and_read_back_as_they_were(store: Store) -> None:
    rid = run_id(store)
    test = {"epoch": 1, "test_loss": float("nan"), "test_acc": 0.5}
    other = {"epoch": 1, "test_loss": 0.75}
    entries = [(1, 1.0, 0, 0.5), (2, 2.0, 1, 0.25), (2, 2.5, -1, 0), (3, 3.0, 1, 0.125)]
    pack = pack_losses([*entries, (3, 3.5, -1, 1)], [test, other])
    assert pack["n"] == 5
    store.append_events(rid, [pack])
    assert rows(store, rid) == [(5, "metrics", 5)]
    assert [(e["seq"], e["step"], e["t"], e["data"]) for e in store.events(rid)] == [
        (1, 1, 1.0, {"epoch": 0, "train_loss": 0.5}),
        (2, 2, 2.0, {"epoch": 1, "train_loss": 0.25}),
        (3, 2, 2.5, {"epoch": 1, "test_loss": "nan", "test_acc": 0.5}),
        (4, 3, 3.0, {"epoch": 1, "train_loss": 0.125}),
        (5, 3, 3.5, other),
    ]
    # A lone one is the plain event it was.
    store.append_events(rid, [pack_losses([(4, 4.0, -1, 0)], [{"epoch": 1, "test_loss": 0.1}])])
    assert store.events(rid, since=5) == [
        {"seq": 6, "type": "metrics", "step": 4, "t": 4.0, "data": {"epoch": 1, "test_loss": 0.1}}
    ]


def test_a_lone_step_is_stored_as_a_plain_event(store: Store) -> None:
    rid = run_id(store)
    store.append_events(rid, [pack_losses([(7, 3.0, 1, 0.25)])])
    assert rows(store, rid) == [(1, "metrics", 1)]
    assert store.events(rid) == [
        {"seq": 1, "type": "metrics", "step": 7, "t": 3.0, "data": {"epoch": 1, "train_loss": 0.25}}
    ]


def test_a_pack_of_json_text_from_the_first_schema_2_still_reads(store: Store) -> None:
    # The first version of schema 2 wrote packs as JSON text [[step, t, data], ...].
    rid = run_id(store)
    text = '[[1,1.5,{"epoch":0,"train_loss":0.5}],[2,2.5,{"epoch":0,"train_loss":"nan"}]]'
    conn = sqlite3.connect(store.path)
    conn.execute(
        "INSERT INTO events (run_id, seq, type, step, t, data, n) "
        "VALUES (?, 2, 'metrics', 2, 2.5, ?, 2)",
        (rid, text),
    )
    conn.execute("UPDATE runs SET last_seq = 2 WHERE id = ?", (rid,))
    conn.commit()
    conn.close()
    assert [(e["seq"], e["step"], e["t"], e["data"]) for e in store.events(rid)] == [
        (1, 1, 1.5, {"epoch": 0, "train_loss": 0.5}),
        (2, 2, 2.5, {"epoch": 0, "train_loss": "nan"}),
    ]


def test_the_store_packs_step_tuples_and_metrics_events_handed_to_it(store: Store) -> None:
    # What the training loop hands over: steps as StepLoss tuples, other events as dicts.
    rid = run_id(store)
    test = {"type": "metrics", "step": 3, "t": 3.5, "data": {"epoch": 1, "test_loss": 0.5}}
    health = {"type": "health", "step": 3, "t": 3.6, "data": {"grad_norm": {}}}
    last = store.append_events(rid, [*steps(1, 3), test, health, *steps(4, 5)])
    assert last == 7
    events = store.events(rid)
    assert [e["step"] for e in events] == [1, 2, 3, 3, 3, 4, 5]
    assert events[3]["data"] == test["data"] and events[4]["data"] == health["data"]
    assert events[0]["data"] == {"epoch": 0, "train_loss": 1.0}
    # the first four share a row, then health, then the last two
    assert [r[2] for r in rows(store, rid)] == [4, 1, 2]


def test_a_limited_read_unpacks_only_the_packs_it_needs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit counts events: a read of 1,000 from 60 packs of 5,000 must not unpack all
    # of them (the hub replays a long run 1,000 events at a time).
    from gradscope.server.store import db

    rid = run_id(store)
    for first in range(1, 300_001, 5000):
        store.append_events(rid, [pack_losses(steps(first, first + 4999))])
    unpacked: list[int] = []
    real = db.events_from_row
    monkeypatch.setattr(db, "events_from_row", lambda row: unpacked.append(row[0]) or real(row))
    page = store.events(rid, since=4500, limit=1000)
    assert [e["seq"] for e in page] == list(range(4501, 5501))
    assert unpacked == [5000, 10000]  # the two packs the page spans, no more
