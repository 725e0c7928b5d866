"""Loss landscapes of an MLP: slices of the true loss around given weights, in plain numpy.

A network is its `Layer` triples (engine.inference); its weights are handled here as one
flat float64 vector (each layer's weight row by row, then its bias), so a slice is
`theta(a, b) = center + a * d1 + b * d2` for two directions d1, d2: two unit vectors for a
slice over two chosen weights, or the filter-normalised random directions of Li et al. 2018
("Visualizing the Loss Landscape of Neural Nets") for a larger network. Every point is
evaluated with engine.inference's forward pass and loss, the same numbers as a test pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradscope.engine.inference import Layer, forward, loss_value


def flatten(layers: Sequence[Layer]) -> np.ndarray:
    """Every weight and bias as one float64 vector (per layer: weight rows, then bias)."""
    parts = []
    for w, b, _ in layers:
        parts.append(np.asarray(w, np.float64).ravel())
        if b is not None:
            parts.append(np.asarray(b, np.float64).ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def unflatten(theta: np.ndarray, like: Sequence[Layer]) -> list[Layer]:
    """Layers shaped as `like` holding the weights of the flat vector `theta`."""
    layers: list[Layer] = []
    i = 0
    for w, b, act in like:
        w_new = theta[i : i + w.size].reshape(w.shape)
        i += w.size
        b_new = None
        if b is not None:
            b_new = theta[i : i + b.size].reshape(b.shape)
            i += b.size
        layers.append((w_new, b_new, act))
    if i != theta.size:
        raise ValueError(f"{theta.size} weights given, the layers hold {i}")
    return layers


def loss_at(
    theta: np.ndarray,
    like: Sequence[Layer],
    x: np.ndarray,
    t: np.ndarray,
    loss: str,
    reduction: str,
) -> float:
    """The loss over (x, t) of the network `like` with the flat weights theta."""
    return loss_value(forward(unflatten(theta, like), x), t, loss, reduction)


def plane(
    center: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    like: Sequence[Layer],
    x: np.ndarray,
    t: np.ndarray,
    loss: str,
    reduction: str,
) -> np.ndarray:
    """The loss at center + a * d1 + b * d2 for a in xs, b in ys: shape (len(ys), len(xs))."""
    out = np.empty((len(ys), len(xs)))
    for j, b in enumerate(ys):
        row = center + b * d2
        for i, a in enumerate(xs):
            out[j, i] = loss_at(row + a * d1, like, x, t, loss, reduction)
    return out


def axis(like: Sequence[Layer], index: int) -> np.ndarray:
    """The unit vector of one weight (its index in the flat vector)."""
    d = np.zeros(flatten(like).size)
    d[index] = 1.0
    return d


def filter_normalized(like: Sequence[Layer], seed: int) -> np.ndarray:
    """A random direction whose every filter (a weight row: one unit's incoming weights) has
    the norm of that filter in `like` (Li et al. 2018, section 4); biases get 0, as there."""
    rng = np.random.default_rng(seed)
    parts = []
    for w, b, _ in like:
        w = np.asarray(w, np.float64)
        d = rng.standard_normal(w.shape)
        norms = np.linalg.norm(d, axis=1, keepdims=True)
        d *= np.linalg.norm(w, axis=1, keepdims=True) / np.where(norms > 0, norms, 1.0)
        parts.append(d.ravel())
        if b is not None:
            parts.append(np.zeros(np.size(b)))
    return np.concatenate(parts)


def project(points: np.ndarray, center: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Each row of points (flat weights) as (a, b) with center + a d1 + b d2 nearest to it
    (least squares: the two directions need not be orthogonal)."""
    basis = np.stack([d1, d2], axis=1)
    coords, *_ = np.linalg.lstsq(basis, (points - center).T, rcond=None)
    return coords.T


def line(
    center: np.ndarray,
    direction: np.ndarray,
    ts: np.ndarray,
    like: Sequence[Layer],
    x: np.ndarray,
    t: np.ndarray,
    loss: str,
    reduction: str,
) -> np.ndarray:
    """The loss at center + s * direction for each s in ts."""
    return np.array([loss_at(center + s * direction, like, x, t, loss, reduction) for s in ts])
