"""server.writer: commits on a background thread, in order, with errors handed back; and
the training loop's fast per-step metrics rows."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from pathlib import Path

import pytest

from server.config import resolve_config
from server.store import Store
from server.store_schema import loss_json, to_json
from server.training import build_trainer
from server.worker import TrainingLoop
from server.writer import BackgroundWriter
from tests.server.test_store import metrics, new_run


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "data")
    yield s
    s.close()


def test_batches_commit_in_order_and_then_runs_after_the_commit(store: Store) -> None:
    run = new_run(store)
    writer = BackgroundWriter(store, run.id)
    seen: list[int] = []
    for i in range(20):
        # `then` sees its own batch already in the store.
        writer.submit(
            metrics(5, 5 * i),
            {"step": 5 * i + 4},
            lambda: seen.append(store.get_run(run.id).last_seq),
        )
    writer.drain()
    assert seen == [5 * (i + 1) for i in range(20)]
    events = store.events(run.id)
    assert [e["seq"] for e in events] == list(range(1, 101))
    assert [e["step"] for e in events] == list(range(100))
    assert store.get_run(run.id).step == 99
    writer.close()
    assert not any(t.name == f"writer-{run.id}" for t in threading.enumerate())


def test_a_failed_commit_is_raised_on_the_training_thread_and_stops_writing(
    store: Store,
) -> None:
    run = new_run(store)
    writer = BackgroundWriter(store, run.id)
    writer.submit(metrics(3), {"step": 2})
    writer.submit([{"type": "metrics", "step": 3, "data": {"x": object()}}], {})  # not JSON
    with pytest.raises(TypeError):
        writer.drain()
    with pytest.raises(TypeError):
        writer.submit(metrics(1, 10), {})
    writer.close()
    assert [e["step"] for e in store.events(run.id)] == [0, 1, 2]


def test_a_full_disk_fails_the_run_cleanly(tmp_path: Path) -> None:
    """The writer's StoreError ends the run as failed, with the store's own message."""
    store = Store(tmp_path)
    config = resolve_config("moons", {"steps": 3000}, max_parameters=10**6, max_steps=10**6)
    run = store.create_run(
        config.model_dump(mode="json"), preset="moons", name=None, source="cli", total_steps=3000
    )
    conn = sqlite3.connect(store.path)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    # max_page_count is per connection: cap the store's own, a few pages above what it has.
    with store._locked() as c:
        c.execute(f"PRAGMA max_page_count = {pages + 8}")
    loop = TrainingLoop(store, run.id, build_trainer(config), config)
    assert loop.run() == "failed"
    record = store.get_run(run.id)
    assert record.state == "failed" and "full" in (record.error or "")
    steps = [e["step"] for e in store.events(run.id, types=("metrics",))]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # whole, ordered commits
    assert record.step < 3000
    store.close()


@pytest.mark.parametrize("loss", [0.1, 1 / 3, 1e-300, 12345678.9, 0.0, -2.5])
def test_loss_rows_are_the_json_that_json_dumps_writes(loss: float) -> None:
    assert json.loads(to_json(loss_json(7, loss))) == {"epoch": 7, "train_loss": loss}
    assert to_json(loss_json(7, loss)) == to_json({"epoch": 7, "train_loss": loss})


def test_non_finite_losses_become_strings() -> None:
    for value, text in ((math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")):
        assert json.loads(loss_json(0, value)) == {"epoch": 0, "train_loss": text}
