"""Numpy helpers behind the recorded events: confusion matrices, 2-D grids, histograms
with fixed edges and MNIST images.

Evaluating the network is engine.inference's job (plain numpy, no graph); JSON-safe
numbers are engine.jsonsafe's and array summaries engine.graph.summarize's.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gradscope.engine.inference import Layer, layer_outputs, softmax_rows
from gradscope.engine.jsonsafe import json_float, json_floats


def confusion(labels: np.ndarray, preds: np.ndarray, classes: int) -> list[list[int]]:
    """matrix[true][predicted] counts."""
    flat = np.bincount(labels * classes + preds, minlength=classes * classes)
    return flat.reshape(classes, classes).tolist()


# -- 2-D data sets ------------------------------------------------------------------------


def bounds_of(x: np.ndarray, pad: float = 0.1) -> list[float]:
    """[xmin, xmax, ymin, ymax] of 2-D points, padded by a share of the span."""
    lo, hi = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
    margin = np.maximum(hi - lo, 1e-6) * pad
    lo, hi = np.round(lo - margin, 4), np.round(hi + margin, 4)
    return [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]


def grid_points(bounds: Sequence[float], n: int) -> np.ndarray:
    """n*n points over bounds, row-major with y outer (the boundary event's order)."""
    xs = np.linspace(bounds[0], bounds[1], n)
    ys = np.linspace(bounds[2], bounds[3], n)
    gx, gy = np.meshgrid(xs, ys)  # (y, x) indexing: rows are y
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


# -- histograms -----------------------------------------------------------------------------


class Histograms:
    """Per-array histograms over edges fixed at the first call, plus a fixed value sample."""

    def __init__(self, bins: int = 32, sample: int = 32, seed: int = 0) -> None:
        self.bins, self.sample, self.seed = bins, sample, seed
        self._fixed: dict[str, tuple[Any, ...]] = {}

    def _fix(self, name: str, a: np.ndarray) -> tuple[Any, ...]:
        with np.errstate(all="ignore"):
            top = float(np.max(np.abs(a))) if a.size else 0.0
        # Twice the starting range leaves room to grow; values beyond land in the end bins.
        bound = 2 * top if math.isfinite(top) and top > 0 else 1.0
        edges = np.linspace(-bound, bound, self.bins + 1)
        rng = np.random.default_rng([self.seed, len(self._fixed)])
        flat = np.sort(rng.choice(a.size, size=min(self.sample, a.size), replace=False))
        # bin = x * scale + offset, in the array's own dtype, into a buffer kept for reuse:
        # four passes over the weights and no fresh allocation (about 0.4 ms per 200k).
        scale = self.bins / (2 * bound)
        dt = a.dtype.type
        fixed = (
            dt(scale),
            dt(bound * scale),
            json_floats(edges),
            np.unravel_index(flat, a.shape),
            np.empty(a.size, dtype=a.dtype),
        )
        self._fixed[name] = fixed
        return fixed

    def layer(self, name: str, a: np.ndarray) -> dict[str, Any]:
        """{"edges", "counts", "norm", "sample"} for one array."""
        fixed = self._fixed.get(name)
        if fixed is None or fixed[4].size != a.size:
            fixed = self._fix(name, a)
        scale, offset, edges, sample_at, pos = fixed
        x = a.ravel(order="K")  # a view for C- or Fortran-ordered weights
        with np.errstate(all="ignore"):
            np.multiply(x, scale, out=pos)
            pos += offset
            # fmax/fmin rather than clip: they also send NaN to bin 0 (inf goes to an end).
            np.fmax(pos, 0, out=pos)
            np.fmin(pos, self.bins - 1, out=pos)
            counts = np.bincount(pos.astype(np.int32), minlength=self.bins)
            norm = math.sqrt(float(np.dot(x, x)))
        return {
            "edges": edges,
            "counts": counts.tolist(),
            "norm": json_float(norm),
            "sample": json_floats(a[sample_at]),
        }


# -- images (MNIST) ---------------------------------------------------------------------------

IMAGE_UNITS = 32  # first-layer units shown as images
MISCLASSIFIED = 24  # test digits in the misclassified strip


def b64_bytes(a: np.ndarray) -> str:
    """uint8 values as base64: a 28x28 image is 1 KB of JSON instead of ~3 KB of numbers."""
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def unit_images(w: np.ndarray, units: int = IMAGE_UNITS) -> dict[str, Any]:
    """The first `units` rows of a first-layer weight matrix (out, in) as 0..255 images.

    Each unit is scaled by its own largest |weight| so that 127.5 is zero: a diverging
    colour map then shows positive and negative weights on one scale per unit.
    """
    w = np.asarray(w[:units], dtype=np.float64)
    scale = np.abs(w).max(axis=1, keepdims=True)
    scale[~np.isfinite(scale) | (scale == 0)] = 1.0
    img = np.clip(np.round(127.5 + 127.5 * np.nan_to_num(w) / scale), 0, 255)
    return {
        "units": list(range(len(w))),
        "scale": json_floats(scale[:, 0]),
        "images": [b64_bytes(row) for row in img],
    }


# -- neuron maps (2-D data sets) -------------------------------------------------------------

NEURON_GRID = 16  # each hidden unit's map: its output over a 16x16 grid of the input plane
NEURON_UNITS = 16  # per layer; a wider layer shows the units that weigh most downstream


def neuron_layers(layers: list[Layer], grid: np.ndarray) -> list[dict[str, Any]]:
    """Each layer's units (the hidden ones, then the outputs) as images of their output over
    the grid (row-major, y outer), scaled per unit like `unit_images`. A hidden layer wider
    than NEURON_UNITS shows the units whose outgoing weights are largest (the next layer's
    column norms), in index order; an output layer its first NEURON_UNITS. Each layer also
    carries its weights between the units shown (out x in, from the previous layer's shown
    units or the inputs), so a network of any size can be drawn from these alone."""
    outs = layer_outputs(layers, grid)
    maps = []
    before = np.arange(min(grid.shape[1], NEURON_UNITS))  # the inputs shown
    for k, h in enumerate(outs):
        units = h.shape[1]
        shown = np.arange(min(units, NEURON_UNITS))
        if units > NEURON_UNITS and k + 1 < len(layers):
            weight = np.linalg.norm(np.nan_to_num(layers[k + 1][0]), axis=0)
            shown = np.sort(np.argsort(-weight, kind="stable")[:NEURON_UNITS])
        images = unit_images(h.T[shown], units=len(shown))
        w = layers[k][0][np.ix_(shown, before)]
        weights = [json_floats(row, 4) for row in w.astype(np.float64)]
        maps.append({**images, "units": units, "shown": shown.tolist(), "weights": weights})
        before = shown
    return maps


def misclassified(
    out: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    image_of: Callable[[int], np.ndarray],
    n: int = MISCLASSIFIED,
) -> dict[str, Any]:
    """The `n` wrong test predictions made with the most confidence, with their images.

    `image_of(row)` gives a test image in 0..1; only the chosen rows are converted.
    """
    wrong = np.flatnonzero(preds != labels)
    items: list[dict[str, Any]] = []
    images: list[str] = []
    if len(wrong):
        prob = softmax_rows(out[wrong])
        conf = prob[np.arange(len(wrong)), preds[wrong]]
        order = np.argsort(-conf, kind="stable")[:n]
        for j in order:
            i = int(wrong[j])
            items.append(
                {
                    "index": i,
                    "label": int(labels[i]),
                    "pred": int(preds[i]),
                    "confidence": round(float(conf[j]), 4),
                }
            )
            images.append(b64_bytes(np.clip(np.round(image_of(i) * 255), 0, 255)))
    return {"total": len(wrong), "items": items, "images": images}
