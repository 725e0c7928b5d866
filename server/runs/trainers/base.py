"""What every trainer shares: the step/epoch clock, the data order, and the events built
from plain numpy (dataset, weights or histograms, boundary, test metrics, confusion).

Engine-specific parts (the step itself, health, the graph, the model's structure,
checkpoints) live in scalar.py and tensor.py. Every event is built from the declarations
in server/runs/events.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.engine.health import update_ratio
from gradscope.engine.inference import Layer, class1_probability, forward, loss_value, predict
from gradscope.engine.jsonsafe import json_float, json_floats
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.data import MNIST_MEAN, MNIST_STD, RunData
from gradscope.server.runs.events import (
    BoundaryData,
    ConfusionData,
    DatasetData,
    EpochMetrics,
    FirstLayerData,
    GraphData,
    GraphValuesData,
    HealthData,
    HistogramsData,
    JsonFloat,
    MisclassifiedData,
    NeuronsData,
    NewEvent,
    ParamStructure,
    WeightsData,
    new_event,
)
from gradscope.server.runs.recording import (
    NEURON_GRID,
    Histograms,
    bounds_of,
    confusion,
    grid_points,
    misclassified,
    neuron_layers,
    unit_images,
)

MAX_WEIGHTS = 1000  # up to this many parameters a record carries every value
MAX_POINTS = 1000  # points in the dataset event
IMAGE_EVERY = 1.0  # seconds between first-layer image snapshots (each is ~35 KB of JSON)


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN/Inf; `op` names the op that made it, when known."""

    def __init__(self, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.message, self.op = message, op


class Trainer:
    """One run's model, data and optimizer; the worker drives it step by step."""

    def __init__(self, config: RunConfig, data: RunData) -> None:
        self.config, self.data = config, data
        self.step = 0
        self.steps_per_epoch = config.steps_per_epoch()
        self.total_steps = config.total_steps()
        self.num_parameters = config.num_parameters()
        bs = config.batch_size
        self._full_batch = bs is None or bs >= data.n_train
        self._perm_epoch, self._perm = -1, np.arange(0)
        self._ended_epoch = False
        self._correct = self._seen = 0  # running train accuracy over the epoch so far
        self._hist = Histograms(seed=config.seed)
        self._bounds = bounds_of(data.x_train) if data.is_2d else None
        self._grid: np.ndarray | None = None
        self._neuron_grid: np.ndarray | None = None
        self._images = config.dataset.name == "mnist"
        self._last_images = -math.inf
        # Small data sets end an epoch every few steps: their confusion matrix waits for the
        # next snapshot (on the recording budget) instead of adding an event every epoch.
        self._confusion: ConfusionData | None = None
        # Health's update ratio is that of one update, the last: the loop sets `watch`
        # before a step whose frame it will record, and the weights are copied before it.
        self.watch = False
        self._before: dict[str, np.ndarray] | None = None
        self._before_step = -1

    # -- the clock and the data order ----------------------------------------------------

    @property
    def epoch(self) -> int:
        """Completed epochs (also the index of the epoch in progress)."""
        return self.step // self.steps_per_epoch

    def epoch_finished(self) -> bool:
        """Did the last train_step end an epoch?"""
        return self._ended_epoch

    def _batch(self) -> np.ndarray | None:
        """Row indices of the next step's batch (None: every row, in data order).

        The order depends only on (seed, epoch), so a resumed run sees the same batches.
        """
        if self._full_batch:
            return None
        epoch, pos = divmod(self.step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            rng = np.random.default_rng([self.config.seed, epoch])
            self._perm, self._perm_epoch = rng.permutation(self.data.n_train), epoch
        bs = self.config.batch_size or 0
        return self._perm[pos * bs : (pos + 1) * bs]

    def train_step(self) -> float:
        """One optimizer update on the next batch; returns that batch's training loss."""
        if self.step % self.steps_per_epoch == 0:
            self._correct = self._seen = 0
        idx = self._batch()
        if self.watch:
            self._before, self._before_step = self._snapshot(), self.step
        loss, out = self._train_batch(idx)
        if self.data.y_train is not None:
            labels = self.data.y_train if idx is None else self.data.y_train[idx]
            self._correct += int((predict(out, self.data.target) == labels).sum())
            self._seen += len(labels)
        self.step += 1
        self._ended_epoch = self.step % self.steps_per_epoch == 0
        return loss

    def _train_batch(self, idx: np.ndarray | None) -> tuple[float, np.ndarray]:
        """Forward, backward, check, update; returns (loss, the batch's outputs)."""
        raise NotImplementedError

    # -- engine-specific hooks -------------------------------------------------------------

    def _layers(self) -> list[Layer]:
        """The network as numpy (weight, bias, activation) triples, for evaluation."""
        raise NotImplementedError

    def _params(self) -> dict[str, np.ndarray]:
        """Every parameter by name, for the weights and histograms events."""
        raise NotImplementedError

    def structure(self) -> dict[str, ParamStructure]:
        """Where each parameter (by the name _params gives it) sits in the model."""
        raise NotImplementedError

    def _health(self) -> HealthData:
        raise NotImplementedError

    def _write_param(self, name: str, index: tuple[int, ...], value: float) -> None:
        """Set one element of a parameter (by the name _params gives it) in the model."""
        raise NotImplementedError

    def intervene(self, param: str, index: Sequence[int], value: float) -> float:
        """Set one weight by hand (a paused run's intervention); the value it had before.
        ValueError, naming what is wrong, for an unknown parameter or an index out of range."""
        params = self._params()
        if param not in params:
            names = ", ".join(list(params)[:6]) + (", ..." if len(params) > 6 else "")
            raise ValueError(f"param: the model has no parameter {param!r} (it has {names})")
        shape = params[param].shape
        inside = len(index) == len(shape) and all(0 <= i < n for i, n in zip(index, shape))
        if not inside:
            raise ValueError(f"index: {list(index)} is not inside {param!r} of shape {list(shape)}")
        old = float(params[param][tuple(index)])
        self._write_param(param, tuple(index), value)
        return old

    def _snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the weights by parameter group, before a watched update."""
        raise NotImplementedError

    def _update_ratios(self, now: dict[str, np.ndarray]) -> dict[str, JsonFloat | None]:
        """||w - w_before|| / ||w_before|| of the last update per group; None (unknown) when
        the last step was not watched: never a sum of updates since an earlier frame."""
        before = self._before if self._before_step == self.step - 1 else None
        if before is None:
            return dict.fromkeys(now)
        return {k: json_float(update_ratio(before[k], v)) for k, v in now.items()}

    def _graph(self) -> GraphData:
        raise NotImplementedError

    def _graph_values(self) -> GraphValuesData:
        raise NotImplementedError

    def _restore_position(self, step: int, meta: dict[str, Any]) -> None:
        """After loading weights: the clock and the epoch's running accuracy."""
        self.step = int(step)
        self._correct = int(meta.get("train_correct", 0))
        self._seen = int(meta.get("train_seen", 0))
        self._ended_epoch = False
        self._before, self._before_step = None, -1

    def _meta(self) -> dict[str, int]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "train_correct": self._correct,
            "train_seen": self._seen,
        }

    def save_checkpoint(self, path: Path) -> None:
        raise NotImplementedError

    def load_checkpoint(self, path: Path) -> None:
        raise NotImplementedError

    # -- events ------------------------------------------------------------------------------

    def start_events(self) -> list[NewEvent]:
        """Once at the start: the 2-D data set's points, and the computation graph."""
        events = []
        if self._bounds is not None and self.data.y_train is not None:
            x, y = self.data.x_train[:MAX_POINTS], self.data.y_train[:MAX_POINTS]
            points = np.concatenate([np.round(x.astype(np.float64), 5), y[:, None]], axis=1)
            rows = [[a, b, int(c)] for a, b, c in points.tolist()]
            data = DatasetData(points=rows, bounds=self._bounds)
            events.append(new_event("dataset", self.step, data))
        events.append(new_event("graph", self.step, self._graph()))
        return events

    def record_events(self) -> list[NewEvent]:
        """The every-k-steps snapshot: weights or histograms, health, graph values, boundary."""
        params = self._params()
        if self.num_parameters <= MAX_WEIGHTS:
            weights = WeightsData(
                params={k: json_floats(v) for k, v in params.items()},
                shapes={k: list(v.shape) for k, v in params.items()},
                structure=self.structure(),
            )
            events = [new_event("weights", self.step, weights)]
        else:
            layers = {k: self._hist.layer(k, v) for k, v in params.items()}
            hist = HistogramsData(layers=layers, structure=self.structure())
            events = [new_event("histograms", self.step, hist)]
        events.append(new_event("health", self.step, self._health()))
        events.append(new_event("graph_values", self.step, self._graph_values()))
        if self._bounds is not None:
            events.append(new_event("boundary", self.step, self.boundary()))
            if self._neuron_grid is None:
                grid = grid_points(self._bounds, NEURON_GRID)
                self._neuron_grid = grid.astype(self.data.x_train.dtype)
            maps = neuron_layers(self._layers(), self._neuron_grid)
            neurons = NeuronsData(grid=NEURON_GRID, bounds=self._bounds, layers=maps)
            events.append(new_event("neurons", self.step, neurons))
        if self._confusion is not None:
            events.append(new_event("confusion", self.step, self._confusion))
            self._confusion = None
        now = time.monotonic()
        if self._images and (
            now - self._last_images >= IMAGE_EVERY or self.step >= self.total_steps
        ):
            self._last_images = now
            events.append(new_event("first_layer", self.step, self.first_layer()))
        return events

    def first_layer(self) -> FirstLayerData:
        """The first layer's weights into the first units, as 28x28 images."""
        w = self._layers()[0][0]
        return FirstLayerData(shape=[28, 28], **unit_images(w))

    def test_image(self, row: int) -> np.ndarray:
        """A test image back in 0..1 (undoing the standardisation the run applied)."""
        x = self.data.x_test[row].astype(np.float64)
        return x * MNIST_STD + MNIST_MEAN if self.config.dataset.standardize else x

    def boundary(self) -> BoundaryData:
        """P(class 1) over a grid covering the 2-D data (row-major, y outer)."""
        assert self._bounds is not None, "only 2-D data sets have a decision boundary"
        n = self.config.record.boundary_grid
        if self._grid is None:
            self._grid = grid_points(self._bounds, n).astype(self.data.x_train.dtype)
        p = class1_probability(forward(self._layers(), self._grid), self.data.target)
        return BoundaryData(grid=n, bounds=self._bounds, values=json_floats(p, 4))

    def evaluate(self) -> dict[str, Any]:
        """Test loss (and accuracy, predictions) under the current weights."""
        d = self.data
        out = forward(self._layers(), d.x_test)
        result: dict[str, Any] = {
            "test_loss": loss_value(out, d.t_test, self.config.loss, self.config.reduction)
        }
        if d.y_test is not None:
            result["out"] = out
            result["preds"] = predict(out, d.target)
            result["test_acc"] = float((result["preds"] == d.y_test).mean())
        return result

    def epoch_events(self) -> list[NewEvent]:
        """At an epoch's end: test metrics; for MNIST the confusion matrix and the mistakes."""
        ev = self.evaluate()
        metrics = EpochMetrics(epoch=self.epoch, test_loss=json_float(ev["test_loss"]))
        events = [new_event("metrics", self.step, metrics)]
        if "preds" in ev and self.data.classes is not None and self.data.y_test is not None:
            metrics["test_acc"] = ev["test_acc"]
            if self._seen:
                metrics["train_acc"] = self._correct / self._seen
            matrix = confusion(self.data.y_test, ev["preds"], len(self.data.classes))
            data = ConfusionData(labels=self.data.classes, matrix=matrix)
            if not self._images:
                self._confusion = data
                return events
            events.append(new_event("confusion", self.step, data))
            wrong = misclassified(ev["out"], self.data.y_test, ev["preds"], self.test_image)
            events.append(
                new_event("misclassified", self.step, MisclassifiedData(shape=[28, 28], **wrong))
            )
        return events
