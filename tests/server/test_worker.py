"""server.runs.loop's TrainingLoop: whole, ordered commits even when the disk fills, checkpoints
pruned only after the run row points past them, and its fast per-step metrics rows."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from gradscope.server.runs.config import resolve_config
from gradscope.server.runs.loop import TrainingLoop
from gradscope.server.runs.trainers import build_trainer
from gradscope.server.store import Store
from gradscope.server.store.encoding import loss_json, to_json


def test_a_full_disk_fails_the_run_cleanly(tmp_path: Path) -> None:
    """The writer's StoreError ends the run as failed, with the store's own message."""
    store = Store(tmp_path)
    config = resolve_config(
        "moons", {"steps": 3000, "pace": None}, max_parameters=10**6, max_steps=10**6
    )
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


def test_checkpoints_keep_the_newest_two_and_the_run_points_at_one(tmp_path: Path) -> None:
    store = Store(tmp_path)
    overrides = {"steps": 1000, "pace": None, "record": {"checkpoint_every": 100}}
    config = resolve_config("moons", overrides, max_parameters=10**6, max_steps=10**6)
    run = store.create_run(
        config.model_dump(mode="json"), preset="moons", name=None, source="cli", total_steps=1000
    )
    assert TrainingLoop(store, run.id, build_trainer(config), config).run() == "finished"
    files = sorted(p.name for p in store.checkpoint_dir(run.id).iterdir())
    assert files == ["step-1000.npz", "step-900.npz"]
    assert store.get_run(run.id).checkpoint == "step-1000.npz"
    events = store.events(run.id, types=("checkpoint",))
    assert [e["step"] for e in events] == list(range(100, 1001, 100))
    store.close()


def test_without_checkpoint_every_a_short_run_checkpoints_once_at_the_end(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    config = resolve_config(
        "moons", {"steps": 500, "pace": None}, max_parameters=10**6, max_steps=10**6
    )
    assert config.record.checkpoint_every is None
    run = store.create_run(
        config.model_dump(mode="json"), preset="moons", name=None, source="cli", total_steps=500
    )
    assert TrainingLoop(store, run.id, build_trainer(config), config).run() == "finished"
    assert [e["step"] for e in store.events(run.id, types=("checkpoint",))] == [500]
    store.close()


@pytest.mark.parametrize("loss", [0.1, 1 / 3, 1e-300, 12345678.9, 0.0, -2.5])
def test_loss_rows_are_the_json_that_json_dumps_writes(loss: float) -> None:
    assert json.loads(to_json(loss_json(7, loss))) == {"epoch": 7, "train_loss": loss}
    assert to_json(loss_json(7, loss)) == to_json({"epoch": 7, "train_loss": loss})


def test_non_finite_losses_become_strings() -> None:
    for value, text in ((math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")):
        assert json.loads(loss_json(0, value)) == {"epoch": 0, "train_loss": text}
