"""Sharpness: the top eigenvalue of the loss Hessian, by power iteration on Hessian-vector
products, each a central difference of two gradients from our Tensor engine (in float64).

Gradient descent with learning rate lr is stable on a quadratic only while this eigenvalue
stays below 2 / lr; Cohen et al. 2021 ("Gradient Descent on Neural Networks Typically Occurs
at the Edge of Stability") watch training drive it up to that line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import gradscope.engine.functional as F
from gradscope.engine.inference import Layer
from gradscope.engine.landscape import flatten, unflatten
from gradscope.engine.tensor import Tensor

LossFn = Callable[[Tensor, np.ndarray], Tensor]  # (outputs, targets) -> a scalar loss
MAX_ITERATIONS = 100
TOLERANCE = 1e-6  # relative change of the estimate that ends the iteration
# The finite-difference step, relative to the weights' size: float64 gradients then carry
# about 1e-12 of rounding, far below the 1% the estimate is held to.
EPSILON = 1e-5


def gradient(
    theta: np.ndarray, like: Sequence[Layer], x: np.ndarray, t: np.ndarray, loss_fn: LossFn
) -> tuple[float, np.ndarray]:
    """(loss, its gradient as a flat vector) of the network `like` at the flat weights theta."""
    params: list[Tensor] = []
    h = Tensor(x, dtype=np.float64)
    with np.errstate(all="ignore"):  # a diverged net gives inf/nan, reported as such
        for w, b, act in unflatten(np.asarray(theta, np.float64), like):
            wt = Tensor(w, requires_grad=True, dtype=np.float64)
            bt = None if b is None else Tensor(b, requires_grad=True, dtype=np.float64)
            params += [wt] if bt is None else [wt, bt]
            h = F.linear(h, wt, bt)
            if act != "linear":
                h = getattr(h, act)()
        loss = loss_fn(h, t)
        loss.backward()
    grads = [np.zeros(p.shape) if p.grad is None else p.grad.ravel() for p in params]
    return float(loss.data), np.concatenate([g.ravel() for g in grads])


def hvp(
    theta: np.ndarray,
    v: np.ndarray,
    like: Sequence[Layer],
    x: np.ndarray,
    t: np.ndarray,
    loss_fn: LossFn,
) -> np.ndarray:
    """H v by central differences: (g(theta + e v) - g(theta - e v)) / 2e, for a unit v."""
    eps = EPSILON * max(1.0, float(np.linalg.norm(theta)) / np.sqrt(max(theta.size, 1)))
    _, up = gradient(theta + eps * v, like, x, t, loss_fn)
    _, down = gradient(theta - eps * v, like, x, t, loss_fn)
    return (up - down) / (2 * eps)


@dataclass
class Sharpness:
    """The estimate, its eigenvector, and the Hessian-vector products it took."""

    value: float
    vector: np.ndarray
    iterations: int


def top_eigenvalue(
    like: Sequence[Layer],
    x: np.ndarray,
    t: np.ndarray,
    loss_fn: LossFn,
    *,
    seed: int = 0,
    max_iterations: int = MAX_ITERATIONS,
    tolerance: float = TOLERANCE,
    start: np.ndarray | None = None,
) -> Sharpness:
    """The Hessian's eigenvalue of largest magnitude at the weights of `like` (the Rayleigh
    quotient v.Hv of the power iteration's unit v); `start` warm-starts it, e.g. with the
    previous step's vector."""
    theta = flatten(like)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(theta.size) if start is None or start.size != theta.size else start
    v = v / np.linalg.norm(v)
    value, i = 0.0, 0
    for i in range(1, max_iterations + 1):
        hv = hvp(theta, v, like, x, t, loss_fn)
        new = float(v @ hv)
        norm = float(np.linalg.norm(hv))
        if not np.isfinite(norm) or norm == 0.0:
            return Sharpness(new if np.isfinite(new) else float("nan"), v, i)
        v = hv / norm
        done = abs(new - value) <= tolerance * max(abs(new), 1e-12)
        value = new
        if done:
            break
    return Sharpness(value, v, i)
