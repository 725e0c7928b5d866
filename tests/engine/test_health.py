"""engine.health and anomaly mode: the numbers a learner watches for a sick network."""

from __future__ import annotations

import numpy as np
import pytest

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor, health, nn, optim


def trained_step(lr: float = 0.1) -> tuple[nn.MLP, dict[str, np.ndarray]]:
    engine.manual_seed(0)
    m = nn.MLP([3, 8, 2])
    opt = optim.SGD(m.parameters(), lr=lr)
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    F.cross_entropy(m(Tensor(x)), np.arange(10) % 2).backward()
    before = health.snapshot(m)
    opt.step()
    return m, before


def test_grad_norms_and_update_ratios() -> None:
    m, before = trained_step(lr=0.1)
    norms = health.grad_norms(m)
    assert list(norms) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    w = m.layers[0].weight
    expected_norm = float(np.sqrt((w.grad.astype(np.float64) ** 2).sum()))
    assert norms["0.weight"] == pytest.approx(expected_norm)
    ratios = health.update_ratios(m, before)
    # Plain SGD moves each weight by lr * grad: the ratio is lr * |g| / |w|.
    expected = 0.1 * norms["0.weight"] / np.linalg.norm(before["0.weight"])
    assert ratios["0.weight"] == pytest.approx(expected, rel=1e-4)
    assert all(r > 0 for r in ratios.values())
    m.zero_grad()
    assert set(health.grad_norms(m).values()) == {0.0}


def test_dead_relu_fraction_counts_units_dead_for_the_whole_batch() -> None:
    m = nn.MLP([2, 4, 1])
    lin = m.layers[0]
    lin.weight.data[...] = [[1, 0], [0, 1], [-1, 0], [0, -5]]
    lin.bias.data[...] = [0, 0, -10, -10]  # units 2 and 3 can never fire on these inputs
    out = m(Tensor([[1.0, 1.0], [2.0, 0.5]]))  # the stats read the live graph
    assert out.shape == (2, 1)
    assert health.dead_relu_fractions(m) == {"1": 0.5}
    del out  # once the step's graph is gone, nothing of it is kept alive for the stats
    assert health.dead_relu_fractions(m) == {}


# These provoke the bad arithmetic on purpose: numpy's own RuntimeWarning about it is
# expected; what they test is the engine's AnomalyError.
NUMPY_WARNS = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


@NUMPY_WARNS
def test_anomaly_mode_names_the_first_bad_op() -> None:
    x = Tensor([1.0, -1.0], requires_grad=True)
    y = (x * 2.0).log()  # log(-2) = nan, silently, without anomaly mode
    assert np.isnan(y.data[1])
    with engine.detect_anomaly(), pytest.raises(engine.AnomalyError, match="op 'log'") as e:
        (x * 2.0).log().sum()
    assert e.value.op == "log" and e.value.phase == "forward"


@NUMPY_WARNS
def test_anomaly_mode_catches_nan_gradients_in_backward() -> None:
    x = Tensor([0.0, 4.0], requires_grad=True)
    with engine.detect_anomaly():
        y = (x**0.5).sum()  # finite forward; d/dx sqrt(x) at 0 is inf
        with pytest.raises(engine.AnomalyError, match=r"backward of op '\*\*0.5'"):
            y.backward()


@NUMPY_WARNS
def test_divergence_is_caught_during_training() -> None:
    engine.manual_seed(1)
    m = nn.MLP([1, 4, 1], activation="relu")
    opt = optim.SGD(m.parameters(), lr=1e6)  # absurd rate: the weights blow up
    x, y = Tensor(np.linspace(-1, 1, 8).reshape(-1, 1) * 1e3), np.zeros((8, 1), np.float32)
    with engine.detect_anomaly(), pytest.raises(engine.AnomalyError) as e:
        for _ in range(50):
            loss = F.mse_loss(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert e.value.op in {"linear", "relu", "mse_loss"}
