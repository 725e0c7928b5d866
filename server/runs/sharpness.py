"""A run's sharpness over its steps, on demand: the top Hessian eigenvalue (engine.sharpness)
at its recorded weights, against the stability limit of its learning rate.

Each step's value is computed once and kept (per run, for the last few runs asked about),
warm-started from the previous step's eigenvector, so a panel that asks again as a run goes
only pays for the new frames.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from gradscope.engine.jsonsafe import json_float
from gradscope.engine.landscape import unflatten
from gradscope.engine.sharpness import top_eigenvalue
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.landscape import CACHED_RUNS, Landscapes
from gradscope.server.store import RunRecord


def stability_limit(config: RunConfig) -> float | None:
    """The sharpness past which gradient descent diverges on a quadratic: 2 / lr, and
    (2 + 2 momentum) / lr with heavy-ball momentum; None for Adam (its steps are rescaled)."""
    o = config.optimizer
    if o.name != "sgd":
        return None
    return (2 + 2 * o.momentum) / o.lr


def chosen(steps: list[int], points: int) -> list[int]:
    """At most `points` of the steps, evenly spaced, the first and the last among them."""
    if len(steps) <= points:
        return steps
    keep = np.unique(np.linspace(0, len(steps) - 1, points).round().astype(int))
    return [steps[i] for i in keep]


class SharpnessSeries:
    """The computed values of the runs asked about: run id -> {step: value}."""

    def __init__(self, landscapes: Landscapes) -> None:
        self.landscapes = landscapes
        self._values: OrderedDict[str, dict[int, float]] = OrderedDict()
        self._vectors: dict[str, np.ndarray] = {}

    def series(self, run: RunRecord, points: int) -> dict[str, Any]:
        """{steps, values, limit, lr, ...} at up to `points` recorded steps of the run."""
        problem = self.landscapes.problem(run)
        steps, thetas = self.landscapes.recorded(run, problem)
        known = self._values.setdefault(run.id, {})
        self._values.move_to_end(run.id)
        while len(self._values) > CACHED_RUNS:
            gone, _ = self._values.popitem(last=False)
            self._vectors.pop(gone, None)
        wanted = chosen(steps, points)
        index = {s: k for k, s in enumerate(steps)}
        for s in wanted:
            if s in known:
                continue
            layers = unflatten(thetas[index[s]], problem.like)
            found = top_eigenvalue(
                layers, problem.x, problem.t, problem.loss_fn, start=self._vectors.get(run.id)
            )
            known[s] = found.value
            if np.all(np.isfinite(found.vector)):
                self._vectors[run.id] = found.vector
        c = problem.config
        return {
            "steps": wanted,
            "values": [json_float(known[s]) for s in wanted],
            "limit": stability_limit(c),
            "lr": c.optimizer.lr,
            "optimizer": c.optimizer.name,
            "samples": problem.rows,
            "train_size": problem.total,
        }
