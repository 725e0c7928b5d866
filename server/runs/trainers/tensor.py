"""Training on the tensor engine: engine.nn's MLP or CNN (cnn.py), engine.optim,
engine.nn.functional."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import AnomalyError, Tensor, checkpoint, health, nn, optim
from gradscope.engine.autograd import topological_order
from gradscope.engine.graph import summarize, to_dict, to_dot
from gradscope.engine.inference import Layer, mlp_layers, module_forward
from gradscope.engine.jsonsafe import json_float
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.data import RunData
from gradscope.server.runs.events import (
    FirstLayerData,
    GraphData,
    GraphValuesData,
    HealthData,
    NewEvent,
    ParamStructure,
    new_event,
)
from gradscope.server.runs.trainers import cnn
from gradscope.server.runs.trainers.base import Trainer, TrainingDiverged

LOSSES = {
    "mse": F.mse_loss,
    "cross_entropy": F.cross_entropy,
    "bce": F.binary_cross_entropy_with_logits,
    "hinge": F.hinge_loss,
}


def make_optimizer(config: RunConfig, params: list[nn.Parameter]) -> optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return optim.SGD(
            params,
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=o.weight_decay or 0.0,
        )
    cls = optim.Adam if o.name == "adam" else optim.AdamW
    return cls(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


class TensorTrainer(Trainer):
    """An nn.MLP (or a CNN) trained on numpy batches."""

    def __init__(self, config: RunConfig, data: RunData) -> None:
        super().__init__(config, data)
        engine.manual_seed(config.seed)
        self.model = cnn.build_model(config)
        self._cnn = config.model.kind == "cnn"  # reads (N, 1, 28, 28) images
        self.optimizer = make_optimizer(config, self.model.parameters())
        self._schedule = cnn.schedule(config, self.optimizer)
        self._named = list(self.model.named_parameters())
        self._structure, self._param_groups = cnn.structure(self.model)
        self._loss_fn = partial(LOSSES[config.loss], reduction=config.reduction)
        # The last step's loss, holding its graph (and the ReLU outputs health reads) until
        # the next step starts; released first thing there, so memory is reused.
        self._last_loss: Tensor | None = None

    def _arrays(self, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        return (d.x_train, d.t_train) if idx is None else (d.x_train[idx], d.t_train[idx])

    def _forward(self, x: np.ndarray, t: np.ndarray) -> tuple[Tensor, Tensor]:
        if self._cnn:
            x = x.reshape(-1, *cnn.IMAGE_SHAPE)
        inp = engine.from_numpy(x)  # the batch is ours and only read: share it, as torch does
        inp.label = "input"
        out = self.model(inp)
        loss = self._loss_fn(out, t)
        penalty = self._penalty()
        if penalty is not None:  # regularization: part of the loss the step descends
            loss = loss + penalty
        loss.label = "loss"
        return out, loss

    def _train_batch(self, idx: np.ndarray | None) -> tuple[float, np.ndarray]:
        self._last_loss = None
        x, t = self._arrays(idx)
        # NaN/Inf is checked below and reported as TrainingDiverged, not as warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            out, loss = self._forward(x, t)
            value = float(loss.data)
            if not math.isfinite(value):
                self._diverged(x, t, f"the loss is {value}")
            self.optimizer.zero_grad()
            loss.backward()
            for name, p in self._named:
                # One sum per parameter: NaN/Inf anywhere makes it non-finite (no mask).
                if p.grad is not None and not math.isfinite(np.add.reduce(p.grad, axis=None)):
                    self._diverged(x, t, f"the gradient of {name} holds NaN or Inf")
            if self._schedule is not None:  # from the step alone: a resumed run agrees
                self.optimizer.lr = self._schedule.lr_at(self.step)
            self.optimizer.step()
        self._last_loss = loss
        return value, out.data

    def _diverged(self, x: np.ndarray, t: np.ndarray, what: str) -> None:
        """Re-run the step under detect_anomaly to name the first op that made NaN/Inf."""
        op, detail = None, ""
        self.optimizer.zero_grad()
        with engine.detect_anomaly(), np.errstate(all="ignore"):
            try:
                _, loss = self._forward(x, t)
                loss.backward()
            except AnomalyError as e:
                op, detail = e.op, f" ({e})"
        self.optimizer.zero_grad()
        raise TrainingDiverged(f"training diverged at step {self.step + 1}: {what}{detail}", op)

    def _graph_root(self) -> Tensor:
        """The last step's loss; before any step, a forward/backward of the first batch."""
        if self._last_loss is None:
            _, loss = self._forward(*self._arrays(self._batch()))
            self.optimizer.zero_grad()
            with np.errstate(all="ignore"):
                loss.backward()
            self._last_loss = loss
        return self._last_loss

    def _graph(self) -> GraphData:
        root = self._graph_root()
        return GraphData(**to_dict(root, self._param_groups), dot=to_dot(root), scope="step")

    def _graph_values(self) -> GraphValuesData:
        nodes = topological_order(self._graph_root())  # to_dict's node order
        return GraphValuesData(
            data=[summarize(v.data) for v in nodes], grad=[summarize(v.grad) for v in nodes]
        )

    def structure(self) -> dict[str, ParamStructure]:
        return self._structure

    def _penalty_weights(self) -> list[Tensor]:
        return [p for name, p in self._named if name.endswith("weight")]

    def _points_changed(self) -> None:
        self._last_loss = None  # its graph was built on the old set

    def _layers(self) -> list[Layer]:
        return mlp_layers(self.model)

    def _outputs(self, x: np.ndarray) -> np.ndarray:
        if not self._cnn:
            return super()._outputs(x)
        return module_forward(self.model, x.reshape(-1, *cnn.IMAGE_SHAPE))

    def first_layer(self) -> FirstLayerData:
        return cnn.kernel_images(self.model) if self._cnn else super().first_layer()

    def record_events(self) -> list[NewEvent]:
        events = super().record_events()
        if self._cnn:  # one fixed test digit through the layers, every frame
            row, d = cnn.FEATURE_DIGIT, self.data
            label = int(d.y_test[row]) if d.y_test is not None else -1
            maps = cnn.feature_maps(self.model, d.x_test[row], row, label, self.test_image(row))
            events.append(new_event("feature_maps", self.step, maps))
        return events

    def _params(self) -> dict[str, np.ndarray]:
        return {name: p.data for name, p in self._named}

    def _write_param(self, name: str, index: tuple[int, ...], value: float) -> None:
        dict(self._named)[name].data[index] = value

    def _health(self) -> HealthData:
        self._graph_root()  # dead-ReLU shares need a live forward pass
        safe = {n: json_float(v) for n, v in health.grad_norms(self.model).items()}
        dead = health.dead_relu_fractions(self.model)
        return HealthData(
            grad_norm=safe,
            update_ratio=self._update_ratios(self._params()),
            dead_relu={n: json_float(v) for n, v in dead.items()},
        )

    def _snapshot(self) -> dict[str, np.ndarray]:
        return health.snapshot(self.model)

    def save_checkpoint(self, path: Path) -> None:
        """Model + optimizer state + the clock, in one .npz (engine.checkpoint)."""
        checkpoint.save_checkpoint(path, self.model, self.optimizer, meta=self._meta())

    def load_checkpoint(self, path: Path) -> None:
        meta = checkpoint.load_checkpoint(path, self.model, self.optimizer)
        if not isinstance(meta.get("step"), int):
            raise checkpoint.CheckpointError(f"{path} does not say which step it was taken at")
        self._restore_position(meta["step"], meta)
        self._last_loss = None
