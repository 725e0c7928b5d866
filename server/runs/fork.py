"""Forks (what-if): a new run that continues another's training from one of its steps,
with changes (POST /api/runs/{id}/fork).

A fork stores no copy of its parent: its history up to the fork step is read through its
lineage (store/lineage.py), and its state at the fork step is rebuilt when its worker
starts. Training is deterministic (the batches depend on the seed and the epoch alone), so
the state at any step is the newest checkpoint file at or before it (of the run or of an
ancestor, within the steps each owns), else the start, trained again up to the step under
each ancestor's config, with each edit made by hand (an intervention event: a weight set,
a training point added or dragged) made again at its step. So a run can be forked at ANY
step it has recorded, a frame step or not, with no checkpoint kept per frame; the cost is
training again from the nearest checkpoint (at most the parent's own training time). A
fork with no changes continues bit for bit as its parent did.

What a fork may change: how it learns from here on and what it records (MUTABLE); never what
it learns from (model, data, batch size, seed: the batches and their order), its engine or
its loss. Either is a 422 naming the field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from gradscope.engine.checkpoint import CheckpointError
from gradscope.engine.optim import Optimizer
from gradscope.server.errors import Invalid
from gradscope.server.runs.config import ConfigError, RunConfig, deep_merge
from gradscope.server.runs.trainers import Trainer
from gradscope.server.runs.trainers.cnn import schedule
from gradscope.server.runs.trainers.scalar import ScalarTrainer
from gradscope.server.runs.trainers.tensor import make_optimizer
from gradscope.server.store import RunRecord, Store

# The config leaves a fork may change (dotted paths).
MUTABLE = (
    "name",
    "optimizer.lr",
    "optimizer.momentum",
    "optimizer.nesterov",
    "optimizer.weight_decay",
    "optimizer.betas",
    "steps",
    "epochs",
    "pace",
    "start_paused",
    "record.every",
    "record.checkpoint_every",
    "record.boundary_grid",
    "record.max_graph_nodes",
)


class BadFork(Invalid):
    """A fork request that cannot be served; `field` names the body field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config as {dotted path: value} of its leaves (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fork_config(
    parent: RunRecord,
    step: int,
    changes: dict[str, Any],
    resolve: Callable[[str | None, dict[str, Any]], RunConfig],
) -> RunConfig:
    """The fork's config: the parent's with `changes`, checked (BadFork naming `step`,
    ConfigError naming the config field); `resolve` applies the server's limits."""
    try:
        own = RunConfig.model_validate(parent.config)
    except ValidationError:
        own = None
    if parent.source == "external" or own is None:  # logged from elsewhere: no trainer here
        raise BadFork(
            "step", f"run {parent.id} has no state to fork from: it was not trained by Gradscope"
        )
    if step > parent.step:
        raise BadFork(
            "step",
            f"step {step} is in the future: run {parent.id} has recorded steps 0 to {parent.step}",
        )
    # A fork starts running unless asked to wait (its parent may have started paused).
    config = resolve(None, deep_merge(deep_merge(parent.config, {"start_paused": False}), changes))
    before = _leaves(own.model_dump(mode="json"))
    after = _leaves(config.model_dump(mode="json"))
    for key, value in after.items():
        if key not in MUTABLE and before.get(key) != value:
            raise ConfigError(
                key,
                f"a fork keeps its parent's model, data, batches, engine and loss: it may "
                f"change {', '.join(MUTABLE)}",
            )
    if config.total_steps() <= step:
        field = next((f for f in ("steps", "epochs") if f in changes), None)
        message = f"the fork would end at step {config.total_steps()}, not after step {step}"
        if field is None:
            raise BadFork("step", f"{message}: fork earlier, or give config.steps beyond it")
        raise ConfigError(field, message)
    return config


def use_config(trainer: Trainer, config: RunConfig) -> None:
    """Go on under another config of the same model and data (a fork's changes): its
    optimizer settings and its length; the weights, the optimizer's state and the clock stay."""
    trainer.config, trainer.total_steps = config, config.total_steps()
    optimizer = getattr(trainer, "optimizer", None)
    if isinstance(optimizer, Optimizer):  # the tensor engine's: a new one's settings
        for key, value in make_optimizer(config, optimizer.params).hyper().items():
            setattr(optimizer, key, value)
        if getattr(trainer, "_schedule", None) is not None:  # its lr follows lr and length
            trainer._schedule = schedule(config, optimizer)  # type: ignore[attr-defined]
    elif isinstance(trainer, ScalarTrainer):  # plain gradient descent at its lr
        trainer.lr = config.optimizer.lr


def _redo(trainer: Trainer, edit: dict[str, Any]) -> None:
    """Make a recorded edit (an intervention event's data) again."""
    if edit.get("what") == "point":  # a training point added (moved_from None) or dragged
        row = None if edit.get("moved_from") is None else edit["index"][0]
        trainer.edit_point(row, *edit["point"])
    else:
        trainer.intervene(edit["param"], edit["index"], edit["new"])


def _checkpoints(store: Store, run_id: str, first: int, last: int) -> list[tuple[int, str]]:
    """(step, name) of the run's checkpoint files still on disk at steps first..last, newest
    first (a running run's loop may remove one at any moment: each is tried in turn)."""
    found = []
    with contextlib.suppress(OSError):
        for path in store.checkpoint_dir(run_id).glob("step-*.npz"):
            step = path.stem.removeprefix("step-")
            if step.isdigit() and first <= int(step) <= last:
                found.append((int(step), path.name))
    return sorted(found, reverse=True)


def restore(store: Store, trainer: Trainer, record: RunRecord, step: int) -> None:
    """Put a fresh trainer (at step 0) in the state `record`'s lineage had at `step`, after
    the edits made there: from the newest checkpoint at or before it, trained again to it
    under each run's config."""
    segments = [
        (run_id, first, step if last is None else min(last, step))
        for run_id, first, last in store.lineage(record.id)
        if first <= step
    ]
    configs = []
    for run_id, _, _ in segments:
        run = store.get_run(run_id)
        if run is None:
            raise RuntimeError(f"run {run_id}, an ancestor of this fork, was deleted")
        configs.append(RunConfig.model_validate(run.config))
    start, loaded = 0, None
    for i in range(len(segments) - 1, -1, -1):
        run_id, first, last = segments[i]
        for at, name in _checkpoints(store, run_id, first, last):
            with contextlib.suppress(CheckpointError, OSError, ValueError):
                trainer.load_checkpoint(store.checkpoint_dir(run_id) / name)
                if trainer.step == at:
                    start, loaded = i, at
                    break
        if loaded is not None:
            break
    if loaded is None and trainer.step != 0:
        raise RuntimeError("the fork's trainer was not fresh and no checkpoint could be read")
    for j in range(start, len(segments)):
        run_id, first, last = segments[j]
        use_config(trainer, configs[j])
        # The edits this segment owns: after the checkpoint it starts from (which holds those
        # made at its step), else from its first step (the parent's at the fork step are the
        # parent's segment's last).
        after = loaded if j == start and loaded is not None else first - 1
        edits: dict[int, list[dict[str, Any]]] = {}
        for e in store.events(run_id, types=("intervention",)):
            if after < e["step"] <= last:
                edits.setdefault(e["step"], []).append(e["data"])
        while True:
            for edit in edits.get(trainer.step, ()):
                _redo(trainer, edit)
            if trainer.step >= last:
                break
            trainer.train_step()
    use_config(trainer, RunConfig.model_validate(record.config))
