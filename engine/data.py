"""Data sets as numpy arrays: the articles' data, the classic 2-D toy sets, and MNIST.

Every loader is deterministic given its seed and returns `(X, y)`: X float32 by default
(a `dtype` parameter picks another float type), y as documented per loader. MNIST lives
in `engine.mnist` (downloads, checksums, IDX parsing) and is re-exported here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from numbers import Integral, Real

import numpy as np
from numpy.typing import DTypeLike

from gradscope.engine.examples import TINY_XS, TINY_YS
from gradscope.engine.mnist import MnistError, load_mnist, mnist_dir, read_idx

__all__ = [
    "FEATURES",
    "REGRESSION_2D",
    "TOY_DATASETS",
    "MnistError",
    "circle",
    "featurize",
    "gauss",
    "load_mnist",
    "mnist_dir",
    "moons",
    "plane",
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
    return _classes_finish(rng, [class0, class1], noise, dt)


def _classes_finish(
    rng: np.random.Generator, groups: list[np.ndarray], noise: float, dt: np.dtype
) -> Dataset:
    """Stack the classes (group j is class j), add gaussian noise, shuffle, and cast."""
    x = np.concatenate(groups)
    y = np.concatenate([np.full(len(g), j, np.int64) for j, g in enumerate(groups)])
    x = x + noise * rng.standard_normal(x.shape)
    order = rng.permutation(len(x))
    return x[order].astype(dt), y[order]


def _class_sizes(n: int, classes: int) -> list[int]:
    """n split into `classes` near-equal parts, the first ones larger (n - n // 2, n // 2)."""
    classes = _check_int(classes, "classes", 2, MAX_CLASSES)
    if n < classes:
        raise ValueError(f"n must be at least the number of classes ({classes}), got {n}")
    return [n // classes + (1 if j < n % classes else 0) for j in range(classes)]


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
    n: int = 200,
    noise: float = 0.1,
    seed: int = 0,
    dtype: DTypeLike = np.float32,
    classes: int = 2,
) -> Dataset:
    """Gaussian blobs (sd 0.15): two at (-0.5, -0.5) for class 0 and (0.5, 0.5) for class 1;
    k > 2 of them evenly around the circle through those two centres, class j the j-th."""
    _, _, noise, dt = _toy_start(n, noise, dtype)
    sizes = _class_sizes(n, classes)
    rng = np.random.default_rng(seed)
    if classes == 2:  # exactly the two diagonal centres (the same numbers as ever)
        centres = np.array([[-0.5, -0.5], [0.5, 0.5]])
    else:
        angles = 1.25 * np.pi + 2 * np.pi * np.arange(classes) / classes
        centres = _polar(np.full(classes, np.sqrt(0.5)), angles)

    def blob(m: int, centre: np.ndarray) -> np.ndarray:
        # Cut at 3 sd so that without noise the line x + y = 0 always separates two of them.
        return centre + np.clip(rng.normal(0.0, 0.15, (m, 2)), -0.45, 0.45)

    return _classes_finish(rng, [blob(m, c) for m, c in zip(sizes, centres)], noise, dt)


SPIRAL_TURNS = 1.75
MAX_CLASSES = 10


def spiral(
    n: int = 200,
    noise: float = 0.1,
    seed: int = 0,
    dtype: DTypeLike = np.float32,
    classes: int = 2,
) -> Dataset:
    """Interleaved spirals of 1.75 turns out to radius 1, one arm per class; arm j is arm 0
    turned by 2 pi j / classes (two arms: class 1 is class 0 turned by pi)."""
    _, _, noise, dt = _toy_start(n, noise, dtype)
    sizes = _class_sizes(n, classes)
    rng = np.random.default_rng(seed)

    def arm(m: int, offset: float) -> np.ndarray:
        r = rng.uniform(0.0, 1.0, m)
        return _polar(r, 2 * np.pi * SPIRAL_TURNS * r + offset)

    arms = [arm(m, 2 * np.pi * j / classes) for j, m in enumerate(sizes)]
    return _classes_finish(rng, arms, noise, dt)


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


def plane(
    n: int = 200, noise: float = 0.1, seed: int = 0, dtype: DTypeLike = np.float32
) -> Dataset:
    """A regression: points uniform in [-1, 1]^2, target (x1 + x2) / 2 plus noise, as (n, 1)."""
    n0, n1, noise, dt = _toy_start(n, noise, dtype)
    n = n0 + n1
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2))
    y = 0.5 * (x[:, 0] + x[:, 1]) + noise * rng.standard_normal(n)
    return x.astype(dt), y.reshape(-1, 1).astype(dt)


# -- input features (TensorFlow Playground's): columns computed from the two coordinates --

FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "x1": lambda a, b: a,
    "x2": lambda a, b: b,
    "x1^2": lambda a, b: a * a,
    "x2^2": lambda a, b: b * b,
    "x1*x2": lambda a, b: a * b,
    "sin(x1)": lambda a, b: np.sin(a),
    "sin(x2)": lambda a, b: np.sin(b),
}


def featurize(points: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The feature columns `names` (keys of FEATURES) of 2-D points (m, 2), as (m, k)."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (m, 2), got {points.shape}")
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ValueError(f"features must be some of {', '.join(FEATURES)}, got {list(names)}")
    a, b = points[:, 0], points[:, 1]
    return np.stack([FEATURES[n](a, b) for n in names], axis=1).astype(points.dtype)


TOY_DATASETS: dict[str, Callable[..., Dataset]] = {
    "circle": circle,
    "xor": xor,
    "gauss": gauss,
    "spiral": spiral,
    "moons": moons,
}
# The toy sets that take a number of classes (`classes=k`).
MULTICLASS_SETS = ("gauss", "spiral")
# The 2-D regression sets: (X, y) with y float (n, 1).
REGRESSION_2D: dict[str, Callable[..., Dataset]] = {"plane": plane}
