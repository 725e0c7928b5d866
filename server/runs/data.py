"""A run's training and test data, with targets shaped the way its loss takes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from gradscope.engine import data
from gradscope.engine.mnist import MIRRORS, Progress
from gradscope.server.datasets import load_points
from gradscope.server.runs.config import PLANE_SETS, TOY_2D, RunConfig

# Generated test sets use the data seed shifted past every seed a config can hold, so a
# test set never equals the training set of another seed.
TEST_SEED_OFFSET = 2**32
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the training pixels scaled to [0, 1]


@dataclass
class RunData:
    """Arrays for one run. `target` says how outputs are read:

    value (regression), index (class indices, one output per class), onehot (0/1 per
    class), pm1 (one output, +-1), zero_one (one output, 0/1), logit (one logit, 0/1).
    """

    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    y_train: np.ndarray | None  # class indices, None for regression
    y_test: np.ndarray | None
    target: str
    classes: list[int] | None  # the class names, in index order
    # 2-D sets: the points themselves (x_* hold their feature columns), and those features.
    points_train: np.ndarray | None = None
    points_test: np.ndarray | None = None
    features: tuple[str, ...] = ()

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def is_2d(self) -> bool:
        return self.points_train is not None

    def featurize(self, points: np.ndarray) -> np.ndarray:
        """The network's inputs for 2-D points (m, 2): their feature columns, in x's dtype."""
        return data.featurize(points.astype(self.x_train.dtype), self.features)

    def add_point(self, row: int | None, x1: float, x2: float, value: float) -> int:
        """Move training row `row` to (x1, x2), or append a point there (row None), with its
        label (classification) or target value (regression); the row it is at."""
        assert self.points_train is not None, "only 2-D sets have points to edit"
        dt = self.x_train.dtype
        xy = np.array([[x1, x2]], dtype=self.points_train.dtype)
        label = None if self.y_train is None else np.array([int(value)], np.int64)
        raw = np.array([[value]]) if label is None else label
        t = _targets(raw, self.target, len(self.classes or ()), dt)
        x = self.featurize(xy)
        if row is None:
            row = self.n_train
            self.points_train = np.concatenate([self.points_train, xy])
            self.x_train = np.ascontiguousarray(np.concatenate([self.x_train, x]))
            self.t_train = np.concatenate([self.t_train, t])
            if label is not None and self.y_train is not None:
                self.y_train = np.concatenate([self.y_train, label])
        else:
            self.points_train[row], self.x_train[row], self.t_train[row] = xy[0], x[0], t[0]
            if label is not None and self.y_train is not None:
                self.y_train[row] = label[0]
        return row


def _csv(config: RunConfig, data_dir: Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded set's split: its rows shuffled by the data seed, the first test_n for testing."""
    d = config.dataset
    if data_dir is None or d.id is None:
        raise ValueError("an uploaded data set (csv) is read from a server's data dir")
    parsed = load_points(data_dir, d.id)
    order = np.random.default_rng(d.seed).permutation(len(parsed.x))
    rows = order[: d.test_n] if split == "test" else order[d.test_n : d.test_n + d.n]
    y = parsed.y[rows]
    return parsed.x[rows], y.reshape(-1, 1) if parsed.kind == "y" else y


def _raw(
    config: RunConfig,
    mnist_dir: Path | None,
    split: str,
    mirrors: Sequence[str] = MIRRORS,
    progress: Progress | None = None,
    data_dir: Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(X float64 or float32, y: class indices, or values for rectangles)."""
    d = config.dataset
    seed = d.seed if split == "train" else d.seed + TEST_SEED_OFFSET
    n = d.n if split == "train" else d.test_n
    if d.name == "rectangles":
        return data.rectangles(n, d.size, seed, dtype=np.float64)
    if d.name == "tiny":  # four samples: the test set is the training set
        x, t = data.tiny_classifier(dtype=np.float64)
        return x, (t[:, 0] > 0).astype(np.int64)
    if d.name == "csv":
        return _csv(config, data_dir, split)
    if d.name in data.REGRESSION_2D:
        return data.REGRESSION_2D[d.name](n, d.noise, seed, dtype=np.float64)
    if d.name in TOY_2D:
        classes = {"classes": d.classes} if d.name in data.MULTICLASS_SETS else {}
        return data.TOY_DATASETS[d.name](n, d.noise, seed, dtype=np.float64, **classes)
    x, y = data.load_mnist(split, directory=mnist_dir, mirrors=mirrors, progress=progress)
    if split == "train" and d.mnist_train_limit is not None:
        x, y = x[: d.mnist_train_limit], y[: d.mnist_train_limit]
    if d.standardize:  # in place, in float32: load_mnist handed us a fresh array
        x -= np.float32(MNIST_MEAN)
        x /= np.float32(MNIST_STD)
    return x, y


def target_kind(config: RunConfig) -> str:
    """How the network's outputs are read for this data set and loss."""
    classes = config.dataset.num_classes()
    if classes is None:
        return "value"
    if config.loss == "cross_entropy":
        return "index"
    if config.loss == "bce":
        return "logit"
    if config.loss == "mse" and classes > 2:
        return "onehot"
    if config.loss == "mse" and config.model.output == "sigmoid":
        return "zero_one"
    return "pm1"


def _targets(y: np.ndarray, kind: str, classes: int | None, dtype: np.dtype) -> np.ndarray:
    if kind == "index":
        return y
    if kind == "value":
        return y.astype(dtype)
    if kind == "onehot":
        return np.eye(classes or 1, dtype=dtype)[y]
    col = y.astype(dtype).reshape(-1, 1)
    return 2 * col - 1 if kind == "pm1" else col


def load_run_data(
    config: RunConfig,
    mnist_dir: Path | None = None,
    dtype: DTypeLike = np.float32,
    mirrors: Sequence[str] = MIRRORS,
    progress: Progress | None = None,
    data_dir: Path | None = None,
) -> RunData:
    """Generate (or load) the data set of a config; X in `dtype`, C-contiguous.

    Missing MNIST files are downloaded from `mirrors`, telling `progress` as they come; an
    uploaded set (csv) is read from `data_dir`. A 2-D set's X is its feature columns.
    """
    dt = np.dtype(dtype)
    kind = target_kind(config)
    n_classes = config.dataset.num_classes()
    features = tuple(config.dataset.features) if config.dataset.name in PLANE_SETS else ()
    splits, points = {}, {}
    for split in ("train", "test"):
        x, y = _raw(config, mnist_dir, split, mirrors, progress, data_dir)
        if features:
            points[split] = np.ascontiguousarray(x, dtype=dt)
            x = data.featurize(points[split], features)
        x = np.ascontiguousarray(x, dtype=dt)
        splits[split] = (x, _targets(y, kind, n_classes, dt), None if kind == "value" else y)
    (x_tr, t_tr, y_tr), (x_te, t_te, y_te) = splits["train"], splits["test"]
    names = None
    if n_classes is not None:
        names = [-1, 1] if config.dataset.name == "tiny" else list(range(n_classes))
    return RunData(
        x_tr, t_tr, x_te, t_te, y_tr, y_te, kind, names,
        points.get("train"), points.get("test"), features,
    )  # fmt: skip
