"""engine.landscape: flat weights, slices of the true loss, Li et al.'s filter-normalised
directions, and the projection of a path onto two directions."""

from __future__ import annotations

import numpy as np
import pytest

from gradscope.engine import landscape as ls
from gradscope.engine.inference import forward, loss_value


def net(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((5, 2)), rng.standard_normal(5), "relu"),
        (rng.standard_normal((3, 5)), None, "tanh"),
        (rng.standard_normal((1, 3)), rng.standard_normal(1), "linear"),
    ]


def test_flatten_and_unflatten_are_inverse() -> None:
    layers = net()
    theta = ls.flatten(layers)
    assert theta.size == 10 + 5 + 15 + 3 + 1
    back = ls.unflatten(theta, layers)
    for (w, b, a), (w2, b2, a2) in zip(layers, back):
        np.testing.assert_array_equal(w, w2)
        assert (b is None and b2 is None) or np.array_equal(b, b2)
        assert a == a2
    with pytest.raises(ValueError, match="35 weights given"):
        ls.unflatten(np.zeros(35), layers)


def test_the_plane_is_the_loss_at_each_point() -> None:
    layers = net(1)
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((30, 2)), rng.standard_normal((30, 1))
    theta = ls.flatten(layers)
    d1, d2 = ls.axis(layers, 0), ls.filter_normalized(layers, 7)
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)
    grid = ls.plane(theta, d1, d2, xs, ys, layers, x, t, "mse", "mean")
    assert grid.shape == (3, 5)
    moved = ls.unflatten(theta + xs[4] * d1 + ys[0] * d2, layers)
    assert grid[0, 4] == loss_value(forward(moved, x), t, "mse", "mean")
    # Centre of the grid: the weights themselves.
    assert grid[1, 2] == pytest.approx(loss_value(forward(layers, x), t, "mse", "mean"))
    line = ls.line(theta, d1, xs, layers, x, t, "mse", "mean")
    np.testing.assert_allclose(line, grid[1])


def test_filter_normalised_directions_match_each_filter_norm() -> None:
    layers = net(3)
    d = ls.unflatten(ls.filter_normalized(layers, 0), layers)
    for (w, _b, _), (dw, db, _) in zip(layers, d):
        np.testing.assert_allclose(np.linalg.norm(dw, axis=1), np.linalg.norm(w, axis=1))
        assert db is None or not db.any()  # biases are left where they are (Li et al.)
    other = ls.filter_normalized(layers, 1)
    assert not np.allclose(other, ls.flatten(d))  # the seed picks the direction


def test_projection_recovers_coordinates() -> None:
    layers = net(4)
    theta = ls.flatten(layers)
    d1, d2 = ls.filter_normalized(layers, 0), ls.filter_normalized(layers, 1)
    coords = np.array([[0.0, 0.0], [0.3, -0.2], [-1.5, 2.0]])
    points = theta + coords[:, :1] * d1 + coords[:, 1:] * d2
    np.testing.assert_allclose(ls.project(points, theta, d1, d2), coords, atol=1e-10)
