"""A run's loss landscape, computed on demand (never on the training path) from its config,
its data and the weights it recorded: the `weights` events of a small model's frames, or
the checkpoint files of a larger one.

The loss is the true loss over the training set (engine.inference's, as a test pass
computes it), over an evenly spaced subsample of GRADSCOPE_LANDSCAPE_SAMPLES rows when the
set is larger (rows i * n // k). A scalar-engine run is evaluated by the equivalent numpy
computation: the same network, data and loss, so the numbers are the run's own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.engine import landscape as ls
from gradscope.engine.checkpoint import CheckpointError, read_checkpoint
from gradscope.engine.inference import Layer
from gradscope.engine.jsonsafe import json_float, json_floats
from gradscope.engine.sharpness import LossFn, gradient, hvp
from gradscope.server.errors import Invalid, NotFound
from gradscope.server.runs.config import RunConfig, validate_config
from gradscope.server.runs.data import load_run_data
from gradscope.server.runs.trainers.tensor import LOSSES
from gradscope.server.store import RunRecord, Store

PATH_POINTS = 500  # recorded steps drawn as the path at most (evenly spaced, the last kept)
SLICE_POINTS = 101  # points of the 1-D slice along the gradient
LEVELS = 12  # contour levels
CACHED_RUNS = 4  # runs whose data stays loaded


@dataclass
class Problem:
    """What a run's loss is a function of, besides its weights."""

    config: RunConfig
    like: list[Layer]  # the layers' shapes and activations (zeros)
    names: list[str]  # the name of each entry of the flat weight vector
    x: np.ndarray
    t: np.ndarray
    rows: int  # rows evaluated
    total: int  # rows in the training set
    loss_fn: LossFn

    def loss(self, theta: np.ndarray) -> float:
        """The loss at the flat weights theta."""
        c = self.config
        return ls.loss_at(theta, self.like, self.x, self.t, c.loss, c.reduction)


def _template(config: RunConfig) -> tuple[list[Layer], list[str]]:
    """Zero layers of the config's network, and default names (tensor style) of its weights."""
    sizes, m = config.layer_sizes(), config.model
    like: list[Layer] = []
    names: list[str] = []
    every = 1 if m.activation == "linear" else 2  # nn.MLP's modules: Linear, activation, ...
    for li in range(len(sizes) - 1):
        n_in, n_out = sizes[li], sizes[li + 1]
        act = m.activation if li < len(sizes) - 2 else m.output
        like.append((np.zeros((n_out, n_in)), np.zeros(n_out) if m.bias else None, act))
        names += [f"{every * li}.weight[{u}][{i}]" for u in range(n_out) for i in range(n_in)]
        names += [f"{every * li}.bias[{u}]" for u in range(n_out)] if m.bias else []
    return like, names


def _subsample(n: int, k: int) -> np.ndarray:
    """The rows evaluated: every row up to k, else k evenly spaced ones (i * n // k)."""
    return np.arange(n) if n <= k else (np.arange(k) * n) // k


class Landscapes:
    """The server's landscape and sharpness computations, one at a time (each takes every
    core numpy gives it), with the data of the last few runs kept loaded."""

    def __init__(self, store: Store, samples: int, mnist_dir: Path | None) -> None:
        self.store, self.samples, self.mnist_dir = store, samples, mnist_dir
        self._problems: OrderedDict[str, Problem] = OrderedDict()
        self.lock = threading.Lock()

    def problem(self, run: RunRecord) -> Problem:
        """The run's network shape, data subsample and loss (cached per run)."""
        if run.id in self._problems:
            self._problems.move_to_end(run.id)
            return self._problems[run.id]
        config = validate_config(run.config)
        kind = getattr(config.model, "kind", "mlp")
        if kind != "mlp":
            raise Invalid(f"run {run.id} is model.kind {kind!r}: a landscape needs a network")
        data = load_run_data(config, self.mnist_dir, np.float64)
        rows = _subsample(data.n_train, self.samples)
        like, names = _template(config)
        if config.engine == "scalar":  # the scalar trainer names each Value
            names = _scalar_names(config)
        loss_fn = partial(LOSSES[config.loss], reduction=config.reduction)
        x, t = data.x_train[rows], data.t_train[rows]
        problem = Problem(config, like, names, x, t, len(rows), data.n_train, loss_fn)
        self._problems[run.id] = problem
        while len(self._problems) > CACHED_RUNS:
            self._problems.popitem(last=False)
        return problem

    # -- the weights a run recorded -----------------------------------------------------------

    def recorded(self, run: RunRecord, problem: Problem) -> tuple[list[int], np.ndarray]:
        """(steps, flat weights at each) of every recorded frame with weights, or else of
        every checkpoint file still on disk, in step order."""
        events = self.store.events(run.id, types=["weights"])
        found: dict[int, np.ndarray] = {}
        for e in events:
            found[e["step"]] = _from_event(e["data"], problem)
        if not found:
            for e in self.store.events(run.id, types=["checkpoint"]):
                path = self.store.checkpoint_dir(run.id) / Path(e["data"]["file"]).name
                theta = _from_checkpoint(path, problem)
                if theta is not None:
                    found[e["step"]] = theta
        steps = sorted(found)
        width = len(problem.names)
        return steps, np.array([found[s] for s in steps]).reshape(len(steps), width)

    def weights_at(
        self, run: RunRecord, problem: Problem, at: int | None
    ) -> tuple[int, np.ndarray, list[int], np.ndarray]:
        """(step, weights) at `at` (default: the last recorded), and the path up to it; a
        NotFound naming the step when none was recorded there."""
        steps, thetas = self.recorded(run, problem)
        if not steps:
            raise NotFound(f"run {run.id} has recorded no weights yet")
        if at is None:
            at = steps[-1]
        if at not in steps:
            before = [s for s in steps if s < at]
            after = [s for s in steps if s > at]
            near = ", ".join(str(s) for s in (before[-1:] + after[:1]))
            raise NotFound(
                f"step {at} of run {run.id} was never recorded with its weights"
                + (f" (the nearest recorded steps: {near})" if near else "")
            )
        k = steps.index(at)
        return at, thetas[k], steps[: k + 1], thetas[: k + 1]


def _scalar_names(config: RunConfig) -> list[str]:
    """The scalar trainer's labels in flat order: w0.. (and b) of a neuron, L.N.w of an MLP."""
    like, _ = _template(config)
    if not config.model.hidden:
        bias = ["b"] if like[0][1] is not None else []
        return [f"w{i}" for i in range(like[0][0].shape[1])] + bias
    names = []
    for li, (w, b, _) in enumerate(like):
        names += [f"L{li}.N{u}.w{i}" for u in range(w.shape[0]) for i in range(w.shape[1])]
        names += [f"L{li}.N{u}.b" for u in range(w.shape[0])] if b is not None else []
    return names


def _from_event(data: dict[str, Any], problem: Problem) -> np.ndarray:
    """A weights event's values placed by their structure into the flat vector."""
    layers = [
        (np.zeros_like(w), None if b is None else np.zeros_like(b), a) for w, b, a in problem.like
    ]
    structure = data["structure"]
    for name, values in data["params"].items():
        place = structure[name]
        w, b, _ = layers[place["layer"]]
        arr = np.array(values, dtype=np.float64).reshape(data["shapes"][name])
        target = w if place["kind"] == "weight" else b
        assert target is not None, f"{name} is a bias of a layer without one"
        if place["unit"] is None:  # a whole tensor
            target[...] = arr
        elif place["kind"] == "weight":
            target[place["unit"], place["input"]] = arr
        else:
            target[place["unit"]] = arr
    return ls.flatten(layers)


def _from_checkpoint(path: Path, problem: Problem) -> np.ndarray | None:
    """The flat weights of a tensor checkpoint ("model/<i>.weight" ...), None when it is gone
    or does not fit this model."""
    try:
        _, arrays = read_checkpoint(path)
    except (CheckpointError, OSError):
        return None
    model = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    modules = sorted({int(k.split(".")[0]) for k in model if k.split(".")[0].isdigit()})
    layers = []
    for li, (w, b, act) in enumerate(problem.like):
        if li >= len(modules):
            return None
        weight, bias = model.get(f"{modules[li]}.weight"), model.get(f"{modules[li]}.bias")
        if weight is None or weight.shape != w.shape or (b is not None and bias is None):
            return None
        layers.append((weight, bias if b is not None else None, act))
    return ls.flatten(layers)


def levels(values: np.ndarray, count: int = LEVELS) -> list[float]:
    """Contour levels: evenly spaced in log(loss - min) between the grid's minimum and its
    95th percentile, so the valley gets as many lines as the walls."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return []
    lo, hi = float(finite.min()), float(np.percentile(finite, 95))
    if hi <= lo:
        return [lo]
    span = hi - lo
    return [lo + span * 10 ** (-3 + 3 * k / (count - 1)) for k in range(count)]


def gradient_slice(problem: Problem, theta: np.ndarray, lr: float) -> dict[str, Any] | None:
    """The loss along the negative gradient from theta, with where a plain gradient step of
    size lr lands (`step_t`, `step_loss`) and where the quadratic model puts the valley's
    floor (`valley_t`): a step past twice that overshoots, and the loss goes up."""
    loss, g = gradient(theta, problem.like, problem.x, problem.t, problem.loss_fn)
    norm = float(np.linalg.norm(g))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    u = -g / norm
    curvature = float(u @ hvp(theta, u, problem.like, problem.x, problem.t, problem.loss_fn))
    step_t = lr * norm
    valley_t = norm / curvature if curvature > 0 else None
    reach = max(step_t, 2 * valley_t if valley_t is not None else step_t) * 1.15
    ts = np.linspace(-0.15 * reach, reach, SLICE_POINTS)
    c = problem.config
    losses = ls.line(theta, u, ts, problem.like, problem.x, problem.t, c.loss, c.reduction)
    return {
        "t": json_floats(ts, 6),
        "loss": json_floats(losses),
        "start_loss": json_float(loss),
        "step_t": json_float(step_t),
        "step_loss": json_float(problem.loss(theta + step_t * u)),
        "valley_t": None if valley_t is None else json_float(valley_t),
        "curvature": json_float(curvature),
        "grad_norm": json_float(norm),
        "lr": lr,
        "gradient": g,  # the caller projects the step onto the slice's axes
    }


def check_params(problem: Problem, params: list[str]) -> list[int]:
    """The flat indices of two named weights; Invalid naming the one that is not a weight."""
    if len(params) != 2 or params[0] == params[1]:
        raise Invalid("params: name two different weights, e.g. params=w0,w1")
    index = {n: i for i, n in enumerate(problem.names)}
    for p in params:
        if p not in index:
            some = ", ".join(problem.names[:6]) + (", ..." if len(problem.names) > 6 else "")
            raise Invalid(f"params: {p!r} is not a parameter of this model (it has {some})")
    return [index[p] for p in params]


def compute(
    problem: Problem,
    step: int,
    theta: np.ndarray,
    path_steps: list[int],
    path: np.ndarray,
    params: list[str] | None,
    n: int,
    seed: int,
) -> dict[str, Any]:
    """The landscape around theta: a 2-D slice (over two weights, or two filter-normalised
    random directions), the path projected onto it, and the 1-D slice along the gradient."""
    if len(path_steps) > PATH_POINTS:  # evenly spaced, the last (theta's) kept
        keep = np.unique(np.linspace(0, len(path_steps) - 1, PATH_POINTS).round().astype(int))
        path_steps, path = [path_steps[i] for i in keep], path[keep]
    lr = problem.config.optimizer.lr
    line = gradient_slice(problem, theta, lr)
    g = line.pop("gradient") if line is not None else None
    if params is not None:
        i, j = check_params(problem, params)
        d1, d2 = ls.axis(problem.like, i), ls.axis(problem.like, j)
        origin = theta.copy()
        origin[[i, j]] = 0.0  # the axes are the two weights' own values
        coords = path[:, [i, j]]
        here = theta[[i, j]]
        axes = [{"name": params[0], "kind": "weight"}, {"name": params[1], "kind": "weight"}]
        bounds = _bounds(coords, floor=0.5, pad=0.3)
        nxt = None if g is None else here - lr * g[[i, j]]
    else:
        d1 = ls.filter_normalized(problem.like, seed)
        d2 = ls.filter_normalized(problem.like, seed + 1)
        origin = theta
        coords = ls.project(path, theta, d1, d2)
        here = np.zeros(2)
        axes = [{"name": f"direction {k}", "kind": "direction", "seed": seed + k} for k in (0, 1)]
        half = max(1.0, 1.2 * float(np.abs(coords[np.isfinite(coords)]).max(initial=0.0)))
        bounds = [-half, half, -half, half]
        nxt = None if g is None else ls.project((theta - lr * g)[None], theta, d1, d2)[0]
    xs, ys = np.linspace(bounds[0], bounds[1], n), np.linspace(bounds[2], bounds[3], n)
    c = problem.config
    grid = ls.plane(origin, d1, d2, xs, ys, problem.like, problem.x, problem.t, c.loss, c.reduction)
    flat = np.where(np.isfinite(grid), grid, np.inf)
    low = int(np.argmin(flat))
    return {
        "step": step,
        "mode": "weights" if params is not None else "directions",
        "axes": axes,
        "n": n,
        "bounds": [json_float(b) for b in bounds],
        "loss": json_floats(grid.ravel()),
        "levels": levels(grid),
        "min": {
            "x": json_float(xs[low % n]),
            "y": json_float(ys[low // n]),
            "loss": json_float(grid.ravel()[low]),
        },
        "point": {
            "x": json_float(here[0]),
            "y": json_float(here[1]),
            "loss": json_float(problem.loss(theta)),
        },
        "next": None if nxt is None else {"x": json_float(nxt[0]), "y": json_float(nxt[1])},
        "path": {
            "step": path_steps,
            "x": json_floats(coords[:, 0]),
            "y": json_floats(coords[:, 1]),
        },
        "slice": line,
        "parameters": problem.names if len(problem.names) <= 1000 else None,
        "samples": problem.rows,
        "train_size": problem.total,
        "optimizer": c.optimizer.name,
    }


def _bounds(coords: np.ndarray, floor: float, pad: float) -> list[float]:
    """[x0, x1, y0, y1] around the path's points, padded, each side at least 2 * floor."""
    out = []
    for k in (0, 1):
        col = coords[:, k][np.isfinite(coords[:, k])]
        lo, hi = (float(col.min()), float(col.max())) if col.size else (0.0, 0.0)
        mid, half = (lo + hi) / 2, max(floor, (hi - lo) / 2 * (1 + pad))
        out += [mid - half, mid + half]
    return out
