"""Training health, cheap enough for every step: gradient norms, update/weight ratios,
dead ReLU units. (NaN/Inf detection that names the op is engine.detect_anomaly.)
"""

from __future__ import annotations

import numpy as np

from gradscope.engine.nn import Module, ReLU


def grad_norm(grad: np.ndarray | None) -> float:
    """L2 norm of a gradient (0.0 where there is none yet)."""
    return float(np.linalg.norm(grad)) if grad is not None else 0.0


def update_ratio(before: np.ndarray, after: np.ndarray) -> float:
    """||after - before|| / ||before||: 0 when nothing moved, inf when a zero weight moved."""
    norm = float(np.linalg.norm(before))
    delta = float(np.linalg.norm(after - before))
    return delta / norm if norm > 0 else (0.0 if delta == 0 else float("inf"))


def grad_norms(model: Module) -> dict[str, float]:
    """L2 norm of each parameter's gradient (0.0 where there is none yet)."""
    return {name: grad_norm(p.grad) for name, p in model.named_parameters()}


def snapshot(model: Module) -> dict[str, np.ndarray]:
    """Copies of the weights, taken before optimizer.step() to measure the update."""
    return {name: p.data.copy() for name, p in model.named_parameters()}


def update_ratios(model: Module, before: dict[str, np.ndarray]) -> dict[str, float]:
    """||w_after - w_before|| / ||w_before|| per parameter (around 1e-3 is healthy)."""
    return {name: update_ratio(before[name], p.data) for name, p in model.named_parameters()}


def dead_relu_fractions(model: Module) -> dict[str, float]:
    """Per ReLU module: the share of its units that output 0 for every sample of the last batch.

    A unit is a feature: a column of a (batch, features) output, a channel of a
    (batch, channels, height, width) one (dead when 0 at every place of every sample).
    """
    out = {}
    for name, m in _named_modules(model):
        if isinstance(m, ReLU) and m.last_output is not None:
            a = m.last_output.data
            if a.ndim > 2:
                a = np.moveaxis(a, 1, -1)
            alive = (a.reshape(-1, a.shape[-1]) > 0).any(axis=0) if a.ndim else a > 0
            out[name] = float(1.0 - np.mean(alive))
    return out


def _named_modules(model: Module, prefix: str = ""):
    yield prefix.rstrip(".") or type(model).__name__, model
    for name, child in model.children():
        yield from _named_modules(child, f"{prefix}{name}.")
