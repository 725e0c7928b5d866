"""Plain-numpy inference for engine MLPs: the forward pass, losses, predictions, softmax.

One shared path for evaluating a trained network without building a graph: the training
loop's test passes and decision-boundary grids, and /api/predict's digit models. Nothing
here touches module state, so evaluation never disturbs what a training step left behind.
Models the numpy pass cannot run (a CNN) go through their own modules in eval mode, with
no graph, in chunks (`module_outputs`, `module_forward`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from gradscope.engine import nn
from gradscope.engine.autograd import no_grad
from gradscope.engine.tensor import from_numpy

Layer = tuple[np.ndarray, np.ndarray | None, str]  # weight (out, in), bias, activation
EVAL_CHUNK = 10_000
MODULE_CHUNK = 1000  # samples a module model evaluates at once: a CNN's maps are large


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0, out=x)
    if name == "tanh":
        return np.tanh(x, out=x)
    if name == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * x))
    return x


ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
NORMS = (nn.BatchNorm2d,)


def mlp_layers(model: nn.Module) -> list[Layer]:
    """An engine MLP's (weight, bias, activation) triples, for the numpy forward pass.

    Raises ValueError on a module this plain forward pass cannot run.
    """
    layers: list[Layer] = []
    for m in getattr(model, "layers", []):
        if isinstance(m, nn.Linear):
            bias = m.bias.data if m.bias is not None else None
            layers.append((m.weight.data, bias, "linear"))
        elif type(m) in ACTIVATIONS and layers:
            w, b, _ = layers[-1]
            layers[-1] = (w, b, ACTIVATIONS[type(m)])
        elif not isinstance(m, nn.Identity):
            raise ValueError(f"cannot run a {type(m).__name__} layer")
    return layers


def layer_outputs(layers: Sequence[Layer], x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output (after its activation) for x; the last is the network's output."""
    outs, h = [], x
    with np.errstate(all="ignore"):  # a diverging net evaluates to inf/nan, not warnings
        for w, b, act in layers:
            h = h @ w.T
            if b is not None:
                h += b
            h = _activate(h, act)
            outs.append(h)
    return outs


def forward(layers: Sequence[Layer], x: np.ndarray) -> np.ndarray:
    """The MLP's outputs for x, in chunks so a large test set stays small in memory."""
    outs = [
        layer_outputs(layers, x[i : i + EVAL_CHUNK])[-1]
        for i in range(0, max(len(x), 1), EVAL_CHUNK)
    ]
    return np.concatenate(outs) if len(outs) > 1 else outs[0]


def loss_value(out: np.ndarray, target: np.ndarray, loss: str, reduction: str) -> float:
    """The run's loss on outputs already computed, in float64."""
    o = out.astype(np.float64)
    with np.errstate(all="ignore"):
        if loss == "cross_entropy":
            z = o - o.max(axis=1, keepdims=True)
            per = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), target]
        elif loss == "bce":
            per = np.maximum(o, 0) - o * target + np.log1p(np.exp(-np.abs(o)))
        elif loss == "hinge":
            per = np.maximum(1 - target * o, 0)
        else:
            per = (o - target) ** 2
        total = float(per.sum())
    return total / per.size if reduction == "mean" else total


def predict(out: np.ndarray, target: str) -> np.ndarray:
    """Predicted class indices from outputs, read the way the targets were written."""
    if out.shape[1] > 1:
        return out.argmax(axis=1)
    threshold = 0.5 if target == "zero_one" else 0.0  # pm1 and logit outputs split at 0
    return (out[:, 0] > threshold).astype(np.int64)


def class1_probability(out: np.ndarray, target: str) -> np.ndarray:
    """How strongly each output says "class 1", in [0, 1] (0.5 on the decision boundary)."""
    with np.errstate(all="ignore"):
        if out.shape[1] > 1:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            return e[:, 1] / e.sum(axis=1)
        o = out[:, 0]
        if target == "logit":
            return 0.5 * (1 + np.tanh(0.5 * o))
        if target == "zero_one":
            return np.clip(o, 0, 1)
        return np.clip((o + 1) / 2, 0, 1)  # +-1 targets: tanh, linear, hinge scores


def softmax_rows(out: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable."""
    z = np.asarray(out, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def module_outputs(model: nn.Sequential, x: np.ndarray, graph: bool = False) -> list[np.ndarray]:
    """Every module's output for x through the model in eval mode (BatchNorm's running
    statistics, no dropout); the model's train/eval mode is restored.

    No graph is recorded unless `graph`: no_grad is process-wide, so a caller on one of
    several threads (the server's predictions) passes graph=True and keeps its model in
    eval mode, and this touches no switch at all."""
    mode, outs = model.training, []
    # The activations' weak references to the last training batch's outputs, which health's
    # dead-ReLU shares read: this pass must not replace them with its own short-lived ones.
    kept = [(m, m._last) for m in model.modules() if type(m) in ACTIVATIONS]
    if mode:
        model.eval()
    try:
        with contextlib.nullcontext() if graph else no_grad(), np.errstate(all="ignore"):
            h = from_numpy(np.ascontiguousarray(x))
            for m in model.layers:
                h = m(h)
                outs.append(h.data)
    finally:
        if mode:
            model.train()
        for m, last in kept:
            m._last = last
    return outs


def stages(model: nn.Sequential) -> list[tuple[str, int]]:
    """The layers worth showing of a module model, as (name, index of the module whose output
    is the layer's): a conv with its norm and activation ("conv 1 (relu)"), a pooling
    ("pool 1"), a hidden dense layer ("hidden 1 (relu)"), the last dense layer ("logits").
    Flatten and Dropout change no value worth a picture and are left out."""
    linears = [i for i, m in enumerate(model.layers) if isinstance(m, nn.Linear)]
    out: list[tuple[str, int]] = []
    counts = {"conv": 0, "pool": 0, "hidden": 0}
    for i, m in enumerate(model.layers):
        if isinstance(m, nn.Conv2d | nn.Linear):
            kind = "conv" if isinstance(m, nn.Conv2d) else "hidden"
            counts[kind] += 1
            last = bool(linears) and i == linears[-1]
            out.append(("logits" if last else f"{kind} {counts[kind]}", i))
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            counts["pool"] += 1
            out.append((f"pool {counts['pool']}", i))
        elif out and out[-1][1] == i - 1 and (type(m) in ACTIVATIONS or isinstance(m, NORMS)):
            name, _ = out[-1]  # a norm or activation right after a layer is part of it
            act = ACTIVATIONS.get(type(m))
            out[-1] = (f"{name} ({act})" if act else name, i)
    return out


def module_forward(model: nn.Sequential, x: np.ndarray, chunk: int = MODULE_CHUNK) -> np.ndarray:
    """The model's outputs for x (eval mode, no graph), `chunk` samples at a time."""
    outs = [module_outputs(model, x[i : i + chunk])[-1] for i in range(0, max(len(x), 1), chunk)]
    return np.concatenate(outs) if len(outs) > 1 else outs[0]
