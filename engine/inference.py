"""Plain-numpy inference for engine MLPs: the forward pass, losses, predictions, softmax.

One shared path for evaluating a trained network without building a graph: the training
loop's test passes and decision-boundary grids, and /api/predict's digit models. Nothing
here touches module state, so evaluation never disturbs what a training step left behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradscope.engine import nn

Layer = tuple[np.ndarray, np.ndarray | None, str]  # weight (out, in), bias, activation
EVAL_CHUNK = 10_000


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0, out=x)
    if name == "tanh":
        return np.tanh(x, out=x)
    if name == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * x))
    return x


ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


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
