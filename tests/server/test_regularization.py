"""The Playground's data and model controls as run config: input features, L1/L2 on both
engines (against a hand computation), more than two classes, a 2-D regression, and the
errors naming the field; point edits of the training set survive a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradscope.engine.inference import forward
from gradscope.server.runs.config import ConfigError, resolve_config
from gradscope.server.runs.trainers import build_trainer

LIMITS = {"max_parameters": 10**6, "max_steps": 10**6}


def _config(**overrides: Any) -> Any:
    base = {"pace": None, "batch_size": None, "steps": 5}
    return resolve_config("moons", {**base, **overrides}, **LIMITS)


def _hand_loss(trainer: Any, kind: str, rate: float) -> float:
    """The data loss (mse, mean) of the trainer's network on its data, plus the penalty over
    the weight matrices (never the biases), computed here from plain numpy."""
    layers = trainer._layers()
    out = forward(layers, trainer.data.x_train.astype(np.float64))
    data = float(np.mean((out - trainer.data.t_train.reshape(out.shape)) ** 2))
    weights = np.concatenate([w.ravel() for w, _, _ in layers])
    penalty = np.abs(weights).sum() if kind == "l1" else (weights**2).sum()
    return data + rate * float(penalty)


@pytest.mark.parametrize("engine", ["tensor", "scalar"])
@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_features_and_the_penalty_change_what_is_trained(engine: str, kind: str) -> None:
    features = ["x1", "x2", "x1^2", "x1*x2", "sin(x2)"]
    config = _config(
        engine=engine,
        loss="mse",
        model={"hidden": [3], "activation": "tanh", "output": "tanh"},
        dataset={"name": "moons", "n": 12, "test_n": 4, "features": features},
        regularization={"kind": kind, "rate": 0.05},
        optimizer={"name": "sgd", "lr": 0.1},
    )
    trainer = build_trainer(config)
    # The first layer reads the five feature columns, computed from the points.
    assert config.layer_sizes()[0] == 5 and trainer._layers()[0][0].shape == (3, 5)
    a, b = trainer.data.points_train[:, 0], trainer.data.points_train[:, 1]
    assert np.allclose(trainer.data.x_train[:, 2], a * a) and np.allclose(
        trainer.data.x_train[:, 4], np.sin(b)
    )
    # The reported training loss is the data loss plus rate * sum |w| or sum w^2.
    expected = _hand_loss(trainer, kind, 0.05)
    assert trainer.train_step() == pytest.approx(expected, rel=1e-5)
    assert expected > _hand_loss(trainer, kind, 0.0)  # the penalty is really part of it
    # The step descended it: the next loss is the hand computation at the updated weights.
    after = _hand_loss(trainer, kind, 0.05)
    assert trainer.train_step() == pytest.approx(after, rel=1e-5)


def test_the_three_class_spiral_learns_with_a_three_by_three_confusion() -> None:
    config = _config(
        dataset={"name": "spiral", "classes": 3, "n": 300, "test_n": 300, "noise": 0.0},
        loss="cross_entropy",
        model={"hidden": [16, 16], "activation": "tanh"},
        optimizer={"name": "adam", "lr": 0.03},
        steps=600,
    )
    trainer = build_trainer(config)
    assert np.bincount(trainer.data.y_train).tolist() == [100, 100, 100]
    while trainer.step < trainer.total_steps:
        trainer.train_step()
    events = trainer.epoch_events()
    assert events[0]["data"]["test_acc"] >= 0.95
    matrix = trainer._confusion["matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == 300
    boundary = trainer.boundary()
    assert boundary["kind"] == "classes" and set(boundary["classes"]) == {0, 1, 2}


def test_the_plane_is_a_regression_drawn_as_values() -> None:
    config = _config(dataset={"name": "plane", "n": 50, "test_n": 20}, loss="mse")
    trainer = build_trainer(config)
    assert config.output_size() == 1 and trainer.data.target == "value"
    points, t = trainer.data.points_train, trainer.data.t_train[:, 0]
    assert np.abs(t - points.sum(axis=1) / 2).max() < 1.0  # (x1 + x2) / 2 plus noise 0.1
    boundary = trainer.boundary()
    assert boundary["kind"] == "value" and boundary["range"][0] < boundary["range"][1]
    data = trainer.dataset_event()["data"]
    assert data["classes"] is None and len(data["test"]) == 20


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"regularization": {"kind": "none", "rate": 0.1}}, "regularization.kind"),
        ({"regularization": {"kind": "l3", "rate": 0.1}}, "regularization.kind"),
        ({"dataset": {"name": "moons", "features": ["x1", "x1"]}}, "dataset.features"),
        ({"dataset": {"name": "moons", "features": ["x3"]}}, "dataset.features.0"),
        ({"dataset": {"name": "mnist", "features": ["x1"]}}, "dataset.features"),
        ({"dataset": {"name": "moons", "classes": 3}}, "dataset.classes"),
        ({"dataset": {"name": "csv"}}, "dataset.id"),
        ({"dataset": {"name": "csv", "id": "0" * 32}}, "dataset.id"),
        ({"dataset": {"name": "plane"}, "loss": "cross_entropy"}, "loss"),
        ({"engine": "scalar", "loss": "mse", "dataset": {"name": "spiral", "classes": 3}},
         "dataset.classes"),
    ],
)  # fmt: skip
def test_bad_controls_name_their_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(**overrides)
    assert caught.value.field == field, caught.value


def test_point_edits_change_the_set_and_survive_a_checkpoint(tmp_path: Path) -> None:
    config = _config(
        dataset={"name": "xor", "n": 20, "test_n": 10, "features": ["x1", "x2", "x1*x2"]}
    )
    trainer = build_trainer(config)
    trainer.train_step()
    row, before, _ = trainer.edit_point(None, 0.25, -0.5, 1)
    assert (row, before) == (20, None) and trainer.data.n_train == 21
    assert trainer.data.x_train[20].tolist() == pytest.approx([0.25, -0.5, -0.125])
    label_before = int(trainer.data.y_train[3])
    moved, before, old_label = trainer.edit_point(3, 0.9, 0.9, 0)
    assert moved == 3 and before is not None and trainer.data.y_train[3] == 0
    assert old_label == label_before
    points = trainer.dataset_event()["data"]["points"]
    assert points[20] == [0.25, -0.5, 1] and points[3] == [0.9, 0.9, 0]
    with pytest.raises(ValueError, match="label"):
        trainer.edit_point(None, 0.0, 0.0, 2)
    with pytest.raises(ValueError, match="row"):
        trainer.edit_point(99, 0.0, 0.0, 1)
    trainer.save_checkpoint(tmp_path / "c.npz")
    again = build_trainer(config)
    again.load_checkpoint(tmp_path / "c.npz")
    assert np.array_equal(again.data.x_train, trainer.data.x_train)
    assert np.array_equal(again.data.y_train, trainer.data.y_train)
    assert again.train_step() == trainer.train_step()
