"""The two articles on the tensor engine give the scalar engine's numbers."""

from __future__ import annotations

import numpy as np
import pytest

import gradscope.engine.nn.functional as F
from gradscope.engine import Tensor, data, nn, optim
from gradscope.engine.examples import NapkinAverage, TinyClassifier

F64 = np.float64


def test_napkin_average_matches_the_scalar_engine(
    napkin_trained: tuple[NapkinAverage, list[float]],
) -> None:
    # The scalar engine's 300 steps (n=1000, seed 0, lr 0.1), run once for the session.
    scalar, scalar_losses = napkin_trained
    start = NapkinAverage(n=1000, seed=0)
    assert (len(scalar.xs), scalar.lr, len(scalar_losses)) == (1000, 0.1, 300)
    X, y = data.rectangles(1000, size=2, seed=0, dtype=F64)
    assert np.array_equal(X, np.array(start.xs)) and scalar.xs == start.xs
    neuron = nn.Linear(4, 1, bias=False, dtype=F64)
    neuron.weight.data[...] = [start.weights]
    opt = optim.SGD(neuron.parameters(), lr=0.1)
    for scalar_loss in scalar_losses:
        loss = F.mse_loss(neuron(Tensor(X, dtype=F64)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert loss.item() == pytest.approx(scalar_loss, rel=1e-9)
    np.testing.assert_allclose(neuron.weight.data[0], scalar.weights, rtol=1e-9)
    assert np.all(np.abs(neuron.weight.data - 0.25) < 0.01)


def test_tiny_classifier_matches_the_scalar_engine() -> None:
    scalar = TinyClassifier()
    X, y = data.tiny_classifier(dtype=F64)
    model = nn.MLP([3, 4, 4, 1], activation="tanh", output_activation="tanh")
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    for lin, layer in zip(linears, scalar.model.layers, strict=True):
        lin.weight.data = np.array([[w.data for w in n.w] for n in layer.neurons])
        lin.bias.data = np.array([n.b.data for n in layer.neurons])
    opt = optim.SGD(model.parameters(), lr=0.1)
    for _ in range(100):
        loss = F.mse_loss(model(Tensor(X, dtype=F64)), y, reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert loss.item() == pytest.approx(scalar.step(), rel=1e-9)
    assert loss.item() < 0.01
