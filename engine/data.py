"""Data sets as numpy arrays: the articles' data, the classic 2-D toy sets, and MNIST.

Every loader is deterministic given its seed and returns `(X, y)`: X float32 by default
(a `dtype` parameter picks another float type), y as documented per loader. MNIST lives
in `engine.mnist` (downloads, checksums, IDX parsing) and is re-exported here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from numbers import Integral, Real

import numpy as np
from numpy.typing import DTypeLike

from gradscope.engine.examples import TINY_XS, TINY_YS
from gradscope.engine.mnist import MnistError, load_mnist, mnist_dir, read_idx

__all__ = [
    "TOY_DATASETS",
    "MnistError",
    "circle",
    "gauss",
    "load_mnist",
    "mnist_dir",
    "moons",
    "read_idx",
    "rectangles",
    "spiral",
    "tiny_classifier",
    "xor",
]

Dataset = tuple[np.ndarray, np.ndarray]


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    """The dtype as a numpy float type, refusing ints and objects by name."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dt}")
    return dt


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high]; bools and floats are refused rather than rounded."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        span = f"at least {low}" if high is None else f"from {low} to {high}"
        raise ValueError(f"{name} must be {span}, got {value}")
    return int(value)


# -- the articles' data --------------------------------------------------------------


def rectangles(
    n: int = 1000, size: int = 2, seed: int = 0, dtype: DTypeLike = np.float32
) -> Dataset:
    """n random size x size pixel rectangles, flattened, and their averages as (n, 1).

    The pixels come from `random.Random(seed)` in the same order as
    `engine.examples.rectangles`, so size 2 with dtype float64 reproduces the scalar
    engine's numbers bit for bit (float32 is their rounding). Size 100, n 1000 draws
    10 million numbers in about a second.
    """
    n = _check_int(n, "n", 1)
    size = _check_int(size, "size (pixels per side)", 2, 100)
    dt = _float_dtype(dtype)
    k = size * size
    draw = random.Random(seed).random
    x = np.fromiter((draw() for _ in range(n * k)), dtype=np.float64, count=n * k)
    x = x.reshape(n, k)
    # Add the columns left to right, as Python's sum() does in examples.rectangles:
    # numpy's pairwise mean can differ from it in the last bit.
    total = np.zeros(n)
    for j in range(k):
        total += x[:, j]
    y = (total / k).reshape(n, 1)
    return x.astype(dt), y.astype(dt)


def tiny_classifier(dtype: DTypeLike = np.float32) -> Dataset:
    """The micrograd article's four samples, X (4, 3), and their +-1 targets, y (4, 1)."""
    dt = _float_dtype(dtype)
    return np.array(TINY_XS, dtype=dt), np.array(TINY_YS, dtype=dt).reshape(-1, 1)


# -- the classic 2-D toy sets (TensorFlow Playground, scikit-learn) ------------------
#
# Each one draws its clean points first and the noise second, from one generator,
# always (even for noise 0): so the same seed at a different noise level jitters the
# same points, which is what a noise slider should do. Labels are 0/1 int64, n // 2
# of class 1 and the rest of class 0, rows shuffled.


def _toy_start(n: int, noise: float, dtype: DTypeLike) -> tuple[int, int, float, np.dtype]:
    """Validate the shared arguments; return the two class sizes, the noise and dtype."""
    n = _check_int(n, "n", 2)
    if isinstance(noise, bool) or not isinstance(noise, Real) or not math.isfinite(noise):
        raise ValueError(f"noise must be a finite number, got {noise!r}")
    if noise < 0:
        raise ValueError(f"noise must be at least 0 (it is a standard deviation), got {noise}")
    return n - n // 2, n // 2, float(noise), _float_dtype(dtype)


def _toy_finish(
    rng: np.random.Generator, class0: np.ndarray, class1: np.ndarray, noise: float, dt: np.dtype
) -> Dataset:
    """Stack the two classes, add gaussian noise, shuffle, and cast."""
    x = np.concatenate([class0, class1])
    y = np.concatenate([np.zeros(len(class0), np.int64), np.ones(len(class1), np.int64)])
    x = x + noise * rng.standard_normal(x.shape)
    order = rng.permutation(len(x))
    return x[order].astype(dt), y[order]


def _polar(r: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Points at radius r and angle (radians), as (m, 2)."""
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)


def circle(
    n: int = 200, noise: float = 0.1, seed: int = 0, dtype: DTypeLike = np.float32
) -> Dataset:
    """Class 0 fills the disc of radius 0.5, class 1 the ring from radius 0.7 to 1."""
    n0, n1, noise, dt = _toy_start(n, noise, dtype)
    rng = np.random.default_rng(seed)

    def ring(m: int, inner: float, outer: float) -> np.ndarray:
        # sqrt of a uniform square radius: uniform over the area, not crowded at the centre.
        r = np.sqrt(rng.uniform(inner**2, outer**2, m))
        return _polar(r, rng.uniform(0, 2 * np.pi, m))

    return _toy_finish(rng, ring(n0, 0.0, 0.5), ring(n1, 0.7, 1.0), noise, dt)


def xor(n: int = 200, noise: float = 0.1, seed: int = 0, dtype: DTypeLike = np.float32) -> Dataset:
    """Points in [-1, 1]^2: class 0 where x*y > 0 (quadrants I, III), class 1 elsewhere."""
    n0, n1, noise, dt = _toy_start(n, noise, dtype)
    rng = np.random.default_rng(seed)

    def quadrants(m: int, same_sign: bool) -> np.ndarray:
        # A 0.05 margin from the axes (Playground's padding) keeps noise-free labels clean.
        size = rng.uniform(0.05, 1.0, (m, 2))
        sx = rng.choice([-1.0, 1.0], m)
        return size * np.stack([sx, sx if same_sign else -sx], axis=1)

    return _toy_finish(rng, quadrants(n0, True), quadrants(n1, False), noise, dt)


def gauss(
    n: int = 200, noise: float = 0.1, seed: int = 0, dtype: DTypeLike = np.float32
) -> Dataset:
    """Two gaussian blobs (sd 0.15) at (-0.5, -0.5) for class 0 and (0.5, 0.5) for class 1."""
    n0, n1, noise, dt = _toy_start(n, noise, dtype)
    rng = np.random.default_rng(seed)

    def blob(m: int, centre: float) -> np.ndarray:
        # Cut at 3 sd so that without noise the line x + y = 0 always separates them.
        return centre + np.clip(rng.normal(0.0, 0.15, (m, 2)), -0.45, 0.45)

    return _toy_finish(rng, blob(n0, -0.5), blob(n1, 0.5), noise, dt)


SPIRAL_TURNS = 1.75


def spiral(
    n: int = 200, noise: float = 0.1, seed: int = 0, dtype: DTypeLike = np.float32
) -> Dataset:
    """Two interleaved spirals of 1.75 turns out to radius 1; class 1 is class 0 turned by pi."""
    n0, n1, noise, dt = _toy_start(n, noise, dtype)
    rng = np.random.default_rng(seed)

    def arm(m: int, offset: float) -> np.ndarray:
        r = rng.uniform(0.0, 1.0, m)
        return _polar(r, 2 * np.pi * SPIRAL_TURNS * r + offset)

    return _toy_finish(rng, arm(n0, 0.0), arm(n1, np.pi), noise, dt)


def moons(
    n: int = 200, noise: float = 0.1, seed: int = 0, dtype: DTypeLike = np.float32
) -> Dataset:
    """scikit-learn's moons: the upper unit half circle (class 0), the lower at (1, 0.5)."""
    n0, n1, noise, dt = _toy_start(n, noise, dtype)
    rng = np.random.default_rng(seed)
    t0 = rng.uniform(0.0, np.pi, n0)
    t1 = rng.uniform(0.0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    return _toy_finish(rng, upper, lower, noise, dt)


TOY_DATASETS: dict[str, Callable[..., Dataset]] = {
    "circle": circle,
    "xor": xor,
    "gauss": gauss,
    "spiral": spiral,
    "moons": moons,
}
