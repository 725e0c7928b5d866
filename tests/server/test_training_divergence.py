"""Divergence: NaN/Inf in a step fails it with TrainingDiverged naming the op that made it,
and leaves the weights as they were."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradscope.engine.scalar import Value
from gradscope.server.runs.trainers import TrainingDiverged

from .test_training import TENSOR_OPS, trainer

# -- divergence -----------------------------------------------------------------------------------


def test_exploding_lr_raises_diverged_naming_an_op() -> None:
    tr = trainer(
        "moons",
        {
            "loss": "mse",
            "model": {"hidden": [256, 256, 256], "activation": "relu"},
            "optimizer": {"name": "sgd", "lr": 10.0},
            "batch_size": None,
        },
    )
    with pytest.raises(TrainingDiverged) as e:
        for _ in range(50):
            tr.train_step()
    assert e.value.op in TENSOR_OPS, e.value
    assert "NaN or Inf" in e.value.message and f"step {tr.step + 1}" in e.value.message
    assert isinstance(e.value, RuntimeError)


def test_inf_in_the_data_is_caught_at_the_first_op() -> None:
    tr = trainer("moons")
    tr.data.x_train[:] = np.inf
    before = [p.data.copy() for p in tr.model.parameters()]
    with pytest.raises(TrainingDiverged) as e:
        tr.train_step()
    assert e.value.op == "linear" and "forward of op 'linear'" in e.value.message
    assert tr.step == 0
    assert all(np.array_equal(a, p.data) for a, p in zip(before, tr.model.parameters()))


def test_scalar_divergence_names_the_op() -> None:
    tr = trainer("napkin-average", {"optimizer": {"lr": 10.0}, "dataset": {"n": 50}})
    with pytest.raises(TrainingDiverged) as e:
        for _ in range(1000):
            tr.train_step()
    assert e.value.op in {"**2", "*", "+"}, e.value
    assert all(math.isfinite(p.data) for p in tr.params)


@pytest.mark.parametrize(
    ("make", "op"),
    [
        (lambda: Value(1e200) ** 2, "**2"),
        (lambda: Value(0.0) ** -1, "**-1"),
        (lambda: Value(-1.0) ** 0.5, "**0.5"),
        (lambda: Value(1000.0).exp(), "exp"),
        (lambda: Value(-1.0).log(), "log"),
    ],
)
def test_a_scalar_ops_error_carries_the_op_as_data(make, op: str) -> None:
    with pytest.raises((ArithmeticError, ValueError)) as e:
        make()
    assert e.value.op == op  # the node's op, not parsed from the message
