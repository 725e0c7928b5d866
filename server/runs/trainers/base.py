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
from gradscope.engine.inference import (
    Layer,
    class1_probability,
    forward,
    loss_value,
    predict,
    softmax_rows,
)
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
        self._bounds = bounds_of(data.points_train) if data.points_train is not None else None
        # Points added or dragged by hand, (row or None, x1, x2, label or target) in order:
        # the checkpoint keeps them, so a resumed run trains on the edited set.
        self._point_edits: list[list[float | None]] = []
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

    def _outputs(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs for x without a graph (test passes)."""
        return forward(self._layers(), x)

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

    def edit_point(
        self, row: int | None, x1: float, x2: float, value: float
    ) -> tuple[int, list[float] | None, float]:
        """Add a training point (row None) or move row `row` there, with this label (or target
        value); (its row, its place before a move, its label before). ValueError, naming what
        is wrong, for a set without points, a row out of range or a label not of the set."""
        d = self.data
        if d.points_train is None:
            raise ValueError("what: points are edited on 2-D data sets only")
        if row is not None and not 0 <= row < d.n_train:
            raise ValueError(f"row: {row} is not a training row (0 to {d.n_train - 1})")
        if d.classes is not None and value not in range(len(d.classes)):
            raise ValueError(f"label: {value:g} is not a class (0 to {len(d.classes) - 1})")
        before = None if row is None else [float(v) for v in d.points_train[row]]
        labels = d.y_train if d.y_train is not None else d.t_train.reshape(d.n_train, -1)[:, 0]
        old = float(value) if row is None else float(labels[row])
        at = d.add_point(row, x1, x2, value)
        self._point_edits.append([row, x1, x2, value])
        self._points_changed()
        return at, before, old

    def _points_changed(self) -> None:
        """The training set changed by hand (engine-specific copies of it follow)."""

    def _penalty_weights(self) -> list[Any]:
        """The weights regularization penalizes (engine objects: Values or Tensors)."""
        raise NotImplementedError

    def _penalty(self) -> Any:
        """rate * sum |w| (l1) or rate * sum w^2 (l2) over the weights, as a graph node of
        the engine (None without regularization): the trainers add it to the loss."""
        reg = self.config.regularization
        if reg.kind == "none":
            return None
        total = None
        for w in self._penalty_weights():
            term = (w.relu() + (-w).relu()) if reg.kind == "l1" else w * w
            term = term.sum() if hasattr(term, "sum") else term
            total = term if total is None else total + term
        return None if total is None else total * reg.rate

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
        edits = meta.get("points") or []
        if edits and not self._point_edits:  # the set as generated: replay the hand edits
            for row, x1, x2, value in edits:
                self.data.add_point(None if row is None else int(row), x1, x2, value)
            self._point_edits = [list(e) for e in edits]
            self._points_changed()

    def _meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "train_correct": self._correct,
            "train_seen": self._seen,
            "points": self._point_edits,
        }

    def save_checkpoint(self, path: Path) -> None:
        raise NotImplementedError

    def load_checkpoint(self, path: Path) -> None:
        raise NotImplementedError

    # -- events ------------------------------------------------------------------------------

    def start_events(self) -> list[NewEvent]:
        """Once at the start: the 2-D data set's points, and the computation graph."""
        events = [] if self._bounds is None else [self.dataset_event()]
        events.append(new_event("graph", self.step, self._graph()))
        return events

    def dataset_event(self) -> NewEvent:
        """The 2-D set's points (training and test) now: at the start, and after an edit."""
        assert self._bounds is not None, "only 2-D data sets have points"
        d = self.data

        def rows(points: np.ndarray | None, y: np.ndarray | None, t: np.ndarray) -> list:
            assert points is not None
            label = y if y is not None else t.reshape(len(t), -1)[:, 0]
            xy = np.round(points[:MAX_POINTS].astype(np.float64), 5).tolist()
            values = label[:MAX_POINTS].tolist()
            cast = int if y is not None else (lambda v: round(float(v), 5))
            return [[a, b, cast(v)] for (a, b), v in zip(xy, values)]

        data = DatasetData(
            points=rows(d.points_train, d.y_train, d.t_train),
            bounds=self._bounds,
            test=rows(d.points_test, d.y_test, d.t_test),
            classes=None if d.classes is None else len(d.classes),
        )
        return new_event("dataset", self.step, data)

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
                self._neuron_grid = self.data.featurize(grid_points(self._bounds, NEURON_GRID))
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
        """P(class 1) over a grid covering the 2-D data (row-major, y outer); with more
        classes the likeliest one and its probability; for a regression the prediction."""
        assert self._bounds is not None, "only 2-D data sets have a decision boundary"
        n, d = self.config.record.boundary_grid, self.data
        if self._grid is None:
            self._grid = d.featurize(grid_points(self._bounds, n))
        out = forward(self._layers(), self._grid)
        if d.target == "value":
            t = d.t_train.astype(np.float64)
            span = [round(float(t.min()), 5), round(float(t.max()), 5)]
            values = json_floats(out[:, 0], 4)
            return BoundaryData(
                grid=n, bounds=self._bounds, values=values, kind="value", range=span
            )
        if d.classes is not None and len(d.classes) > 2:
            # Softmax for logits; mse's one-hot outputs read as they are, clipped to [0, 1].
            p = softmax_rows(out) if d.target == "index" else np.clip(out, 0.0, 1.0)
            best = p.argmax(axis=1)
            return BoundaryData(
                grid=n,
                bounds=self._bounds,
                values=json_floats(p[np.arange(len(p)), best], 4),
                kind="classes",
                classes=best.tolist(),
            )
        p = class1_probability(out, d.target)
        return BoundaryData(grid=n, bounds=self._bounds, values=json_floats(p, 4))

    def evaluate(self) -> dict[str, Any]:
        """Test loss (and accuracy, predictions) under the current weights."""
        d = self.data
        out = self._outputs(d.x_test)
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
