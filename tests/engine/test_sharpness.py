"""engine.sharpness: the power iteration on finite-difference Hessian-vector products agrees
with the top eigenvalue of the exact Hessian that PyTorch computes, and its gradient with
PyTorch's."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

import gradscope.engine.functional as F
from gradscope.engine.landscape import flatten
from gradscope.engine.sharpness import gradient, hvp, top_eigenvalue

ACTS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "linear": lambda h: h}


def tiny(seed: int, act: str) -> tuple[list, np.ndarray, np.ndarray]:
    """A 3-4-1 network with biases, on 24 samples."""
    rng = np.random.default_rng(seed)
    layers = [
        (rng.standard_normal((4, 3)), rng.standard_normal(4), act),
        (rng.standard_normal((1, 4)), rng.standard_normal(1), "linear"),
    ]
    return layers, rng.standard_normal((24, 3)), rng.standard_normal((24, 1))


def torch_loss(layers: list, x: np.ndarray, t: np.ndarray, reduction: str):
    """The same network and MSE as a function of the flat weights, in torch."""
    xs, ts = torch.tensor(x), torch.tensor(t)

    def f(theta: torch.Tensor) -> torch.Tensor:
        h, i = xs, 0
        for w, b, act in layers:
            wt = theta[i : i + w.size].reshape(w.shape)
            i += w.size
            bt = theta[i : i + b.size]
            i += b.size
            h = ACTS[act](h @ wt.T + bt)
        sq = (h - ts) ** 2
        return sq.mean() if reduction == "mean" else sq.sum()

    return f


@pytest.mark.parametrize(
    ("seed", "act", "reduction"),
    [(0, "tanh", "mean"), (1, "sigmoid", "sum"), (2, "linear", "mean")],
)
def test_power_iteration_agrees_with_the_exact_hessian(seed: int, act: str, reduction: str) -> None:
    layers, x, t = tiny(seed, act)
    f = torch_loss(layers, x, t, reduction)
    theta = torch.tensor(flatten(layers))
    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, theta)).numpy()
    top = exact[np.argmax(np.abs(exact))]  # power iteration finds the largest in magnitude
    found = top_eigenvalue(layers, x, t, partial(F.mse_loss, reduction=reduction))
    assert found.value == pytest.approx(top, rel=0.01)
    assert found.iterations > 1


def test_gradient_and_hvp_agree_with_torch() -> None:
    layers, x, t = tiny(3, "tanh")
    f = torch_loss(layers, x, t, "mean")
    theta = torch.tensor(flatten(layers), requires_grad=True)
    loss = f(theta)
    (g,) = torch.autograd.grad(loss, theta)
    ours_loss, ours = gradient(flatten(layers), layers, x, t, partial(F.mse_loss, reduction="mean"))
    assert ours_loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(ours, g.numpy(), rtol=1e-10, atol=1e-12)
    v = np.random.default_rng(0).standard_normal(theta.numel())
    v /= np.linalg.norm(v)
    exact = torch.autograd.functional.hessian(f, theta.detach()).numpy() @ v
    found = hvp(flatten(layers), v, layers, x, t, partial(F.mse_loss, reduction="mean"))
    np.testing.assert_allclose(found, exact, rtol=1e-5, atol=1e-7)


def test_a_warm_start_converges_in_fewer_products() -> None:
    layers, x, t = tiny(4, "tanh")
    loss_fn = partial(F.mse_loss, reduction="mean")
    cold = top_eigenvalue(layers, x, t, loss_fn)
    warm = top_eigenvalue(layers, x, t, loss_fn, start=cold.vector)
    assert warm.value == pytest.approx(cold.value, rel=1e-4)
    assert warm.iterations < cold.iterations
