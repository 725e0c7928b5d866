"""engine.data: the articles' data as arrays, and the 2-D toy sets (MNIST: test_mnist.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gradscope.engine import data, examples
from gradscope.engine.data import (
    TOY_DATASETS,
    circle,
    gauss,
    moons,
    rectangles,
    spiral,
    tiny_classifier,
    xor,
)

TOYS = sorted(TOY_DATASETS)


# -- rectangles and the tiny classifier ----------------------------------------------


@pytest.mark.parametrize("n, seed", [(1, 0), (50, 3), (1000, 0)])
def test_rectangles_size_2_is_the_scalar_engines_data(n: int, seed: int) -> None:
    xs, ys = examples.rectangles(n, seed)
    X, y = rectangles(n, size=2, seed=seed, dtype=np.float64)
    assert X.tolist() == xs and y[:, 0].tolist() == ys  # bit for bit
    X32, y32 = rectangles(n, seed=seed)
    assert X32.dtype == y32.dtype == np.float32
    assert np.array_equal(X32, np.array(xs, np.float32))
    assert np.array_equal(y32[:, 0], np.array(ys, np.float32))


@pytest.mark.parametrize("size", [2, 3, 28, 100])
def test_rectangles_shapes_range_and_mean(size: int) -> None:
    n = 1000 if size == 100 else 40
    X, y = rectangles(n, size=size, seed=7)
    assert X.shape == (n, size * size) and y.shape == (n, 1)
    assert X.min() >= 0.0 and X.max() < 1.0
    np.testing.assert_allclose(y[:, 0], X.astype(np.float64).mean(axis=1), rtol=1e-6)
    X2, y2 = rectangles(5, size=size, seed=7)  # the same draws: a prefix of the above
    assert np.array_equal(X[:5], X2) and np.array_equal(y[:5], y2)
    assert not np.array_equal(X2, rectangles(5, size=size, seed=8)[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 1},
        {"size": 101},
        {"size": 0},
        {"size": 2.0},
        {"size": True},
        {"n": 0},
        {"n": 1.5},
        {"dtype": np.int32},
    ],
)
def test_rectangles_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"size|n must|dtype"):
        rectangles(**kwargs)


def test_rectangles_size_message_names_the_range() -> None:
    with pytest.raises(ValueError, match=r"from 2 to 100.*got 101"):
        rectangles(size=101)


def test_tiny_classifier_is_the_articles_four_samples() -> None:
    X, y = tiny_classifier()
    assert X.dtype == y.dtype == np.float32 and X.shape == (4, 3) and y.shape == (4, 1)
    assert X.tolist() == [[2, 3, -1], [3, -1, 0.5], [0.5, 1, 1], [1, 1, -1]]
    assert y[:, 0].tolist() == [1, -1, -1, 1]
    X64, _ = tiny_classifier(np.float64)
    assert X64.dtype == np.float64 and X64.tolist() == [list(x) for x in examples.TINY_XS]


# -- the 2-D toy sets ----------------------------------------------------------------


def test_registry_names_the_five_sets() -> None:
    registry = [(name, make.__name__) for name, make in TOY_DATASETS.items()]
    assert registry == [(n, n) for n in ("circle", "xor", "gauss", "spiral", "moons")]
    assert TOY_DATASETS["moons"] is moons and TOY_DATASETS["circle"] is circle


@pytest.mark.parametrize("name", TOYS)
@pytest.mark.parametrize("n", [2, 3, 200, 201])
def test_toy_shapes_dtypes_and_balance(name: str, n: int) -> None:
    X, y = TOY_DATASETS[name](n)
    assert X.shape == (n, 2) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.bincount(y, minlength=2).tolist() == [n - n // 2, n // 2]
    assert np.isfinite(X).all()
    assert TOY_DATASETS[name](n, dtype=np.float64)[0].dtype == np.float64


@pytest.mark.parametrize("name", TOYS)
def test_toy_determinism_per_seed(name: str) -> None:
    make = TOY_DATASETS[name]
    X, y = make(100, seed=5)
    X2, y2 = make(100, seed=5)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    for noise in (0.0, 0.1):
        assert not np.array_equal(make(100, noise, seed=5)[0], make(100, noise, seed=6)[0])


@pytest.mark.parametrize("name", TOYS)
def test_toy_noise_jitters_the_same_points(name: str) -> None:
    make = TOY_DATASETS[name]
    clean, y0 = make(300, 0.0, seed=2, dtype=np.float64)
    noisy, y1 = make(300, 0.2, seed=2, dtype=np.float64)
    assert np.array_equal(y0, y1)
    jitter = noisy - clean
    assert 0.15 < jitter.std() < 0.25 and abs(jitter.mean()) < 0.05


@pytest.mark.parametrize("seed", range(5))
def test_clean_xor_labels_follow_the_quadrant_signs(seed: int) -> None:
    X, y = xor(400, noise=0.0, seed=seed)
    assert np.array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(np.int64))
    assert np.abs(X).min() >= 0.05 - 1e-7 and np.abs(X).max() <= 1.0


@pytest.mark.parametrize("seed", range(5))
def test_clean_circle_labels_follow_the_radius(seed: int) -> None:
    X, y = circle(400, noise=0.0, seed=seed)
    r = np.hypot(X[:, 0], X[:, 1])
    assert (r[y == 0] <= 0.5 + 1e-6).all()
    assert ((r[y == 1] >= 0.7 - 1e-6) & (r[y == 1] <= 1.0 + 1e-6)).all()


@pytest.mark.parametrize("seed", range(5))
def test_clean_gauss_is_split_by_the_diagonal(seed: int) -> None:
    X, y = gauss(400, noise=0.0, seed=seed)
    assert np.array_equal(y, (X.sum(axis=1) > 0).astype(np.int64))
    for label, centre in ((0, -0.5), (1, 0.5)):
        np.testing.assert_allclose(X[y == label].mean(axis=0), [centre, centre], atol=0.05)


def test_clean_spiral_points_lie_on_their_arm() -> None:
    X, y = spiral(400, noise=0.0, seed=3, dtype=np.float64)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.max() <= 1.0
    angle = 2 * np.pi * data.SPIRAL_TURNS * r + np.pi * y
    np.testing.assert_allclose(X, np.stack([r * np.cos(angle), r * np.sin(angle)], 1), atol=1e-12)


def test_clean_moons_lie_on_their_half_circles() -> None:
    X, y = moons(400, noise=0.0, seed=4, dtype=np.float64)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0)
    assert (upper[:, 1] >= 0).all() and (lower[:, 1] <= 0.5).all()


@pytest.mark.parametrize("name", TOYS)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 1}, "n must be at least 2"),
        ({"n": 0}, "n must be at least 2"),
        ({"n": 10.0}, "n must be an integer"),
        ({"noise": -0.1}, "noise must be at least 0"),
        ({"noise": float("nan")}, "noise must be a finite number"),
        ({"noise": float("inf")}, "noise must be a finite number"),
        ({"noise": "0.1"}, "noise must be a finite number"),
        ({"dtype": np.int64}, "dtype must be a floating-point type"),
    ],
)
def test_toy_bad_arguments(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TOY_DATASETS[name](**kwargs)


def test_mnist_is_reexported() -> None:
    from gradscope.engine import mnist

    assert data.load_mnist is mnist.load_mnist and issubclass(data.MnistError, ValueError)
