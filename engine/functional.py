"""engine.nn.functional: fused layers and losses, each forward beside its backward.

Fusing (linear = matmul + bias, cross_entropy = log_softmax + NLL) saves temporaries and
graph nodes on the hot path; the gradients are the same as the composed ops'.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradscope.engine.autograd import accumulate as _accumulate
from gradscope.engine.conv import conv2d  # noqa: F401 (F's API)
from gradscope.engine.norm import batch_norm, dropout  # noqa: F401 (F's API)
from gradscope.engine.pool import avg_pool2d, max_pool2d  # noqa: F401 (F's API)
from gradscope.engine.tensor import Tensor, _make

REDUCTIONS = ("mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _target(target: Any, like: Tensor, name: str) -> np.ndarray:
    """The target as an array of like's shape and dtype, or a ValueError naming the mismatch."""
    t = target.data if isinstance(target, Tensor) else np.asarray(target, dtype=like.dtype)
    if t.shape != like.shape:
        raise ValueError(f"{name}: target shape {t.shape} does not match input shape {like.shape}")
    return t.astype(like.dtype, copy=False)


def _scale(out: Tensor, n: int) -> np.ndarray:
    """The upstream gradient times 1/n for a mean (1 for a sum), as a broadcastable array."""
    reduction = out._ctx[0]
    return out.grad / n if reduction == "mean" else out.grad


_CACHE_MAX = 64  # distinct batch sizes kept; past that, start over
_ROWS: dict[int, np.ndarray] = {}


def _arange(n: int) -> np.ndarray:
    """np.arange(n), read-only and cached: the batch size rarely changes between steps."""
    rows = _ROWS.get(n)
    if rows is None:
        if len(_ROWS) >= _CACHE_MAX:
            _ROWS.clear()
        rows = _ROWS[n] = np.arange(n)
        rows.flags.writeable = False
    return rows


def _reduce(x: np.ndarray, reduction: str) -> np.ndarray:
    # np.add.reduce skips the Python-level wrapper of ndarray.mean: it counts on tiny nets.
    total = np.add.reduce(x, axis=None)
    return np.asarray(total / x.size if reduction == "mean" else total, dtype=x.dtype)


# -- layers ------------------------------------------------------------------------------


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias in one op (weight is (out_features, in_features), as in PyTorch)."""
    y = x.data @ weight.data.T
    if bias is not None:
        y += bias.data  # y is a fresh array: adding in place saves a temporary
        return _make(y, (x, weight, bias), "linear", _linear_bw)
    return _make(y, (x, weight), "linear", _linear_bw)


def _linear_bw(out: Tensor) -> None:
    # The hottest backward: accumulate() is inlined (t.grad = g, or t.grad + g).
    prev = out._prev
    x, w = prev[0], prev[1]
    g = out.grad
    if x.requires_grad:
        gx = g @ w.data
        if gx.dtype != x.data.dtype:  # a grad keeps its tensor's dtype (mixed-dtype linear)
            gx = gx.astype(x.data.dtype)
        x.grad = gx if x.grad is None else x.grad + gx
    x2, g2 = x.data, g
    if g.ndim != 2:  # fold leading batch dims for the weight and bias gradients
        x2, g2 = x2.reshape(-1, x2.shape[-1]), g.reshape(-1, g.shape[-1])
    if w.requires_grad:
        # Produce the gradient in the weight's own memory layout (see nn.Linear).
        gw = (x2.T @ g2).T if w.data.flags.f_contiguous else g2.T @ x2
        if gw.dtype != w.data.dtype:
            gw = gw.astype(w.data.dtype, order="K")
        w.grad = gw if w.grad is None else w.grad + gw
    if len(prev) == 3 and prev[2].requires_grad:
        b = prev[2]
        gb = np.add.reduce(g2, axis=0, dtype=b.data.dtype)
        b.grad = gb if b.grad is None else b.grad + gb


def relu(x: Tensor) -> Tensor:
    return x.relu()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.log_softmax(dim)


# -- losses ------------------------------------------------------------------------------


def _with_target(x: Tensor, target: Any) -> tuple[Tensor, ...]:
    # A target that requires grad (a distillation target, a learned one) joins the graph
    # and gets its gradient, as in PyTorch; a plain target stays out of the picture.
    return (x, target) if isinstance(target, Tensor) and target.requires_grad else (x,)


def _target_grad(out: Tensor, g: np.ndarray) -> None:
    """Accumulate g into the target, when it is in the graph, in the target's own dtype."""
    if len(out._prev) == 2:
        t = out._prev[1]
        _accumulate(t, g.astype(t.dtype, copy=False))


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error."""
    _check_reduction(reduction)
    diff = input.data - _target(target, input, "mse_loss")
    out = _make(_reduce(diff * diff, reduction), _with_target(input, target), "mse_loss", _mse_bw)
    out._ctx = (reduction, diff)
    return out


def _mse_bw(out: Tensor) -> None:
    diff = out._ctx[1]
    g = diff * (2 * _scale(out, diff.size))
    _accumulate(out._prev[0], g)
    _target_grad(out, -g)


def _class_indices(target: Any, n: int) -> np.ndarray:
    """N integer class indices from an array, a list or a Tensor, or a ValueError."""
    y = np.asarray(target.data if isinstance(target, Tensor) else target)
    if y.size == 0 and not isinstance(target, np.ndarray | Tensor):
        y = y.astype(np.int64)  # np.asarray([]) is float64
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(
            f"cross_entropy: target must be {n} integer class indices, got "
            f"shape {y.shape} of {y.dtype}"
        )
    return y


def _drop_ignored(y: np.ndarray, ignore_index: int, c: int) -> tuple[np.ndarray, Any]:
    """(y with ignored rows set to class 0, the mask of rows kept or None if all are)."""
    keep = y != ignore_index
    kept = y[keep]
    if kept.size and (kept.min() < 0 or kept.max() >= c):
        raise ValueError(
            f"cross_entropy: class index out of range [0, {c}): {kept.min()}..{kept.max()}"
        )
    if keep.all():
        return y, None
    return np.where(keep, y, 0).astype(y.dtype, copy=False), keep


def cross_entropy(
    logits: Tensor, target: Any, reduction: str = "mean", ignore_index: int = -100
) -> Tensor:
    """Softmax cross-entropy of (N, C) logits against N class indices, numerically stable.

    Rows whose target is ignore_index add nothing, and a mean is over the other rows
    (NaN when there are none), as in PyTorch.
    """
    _check_reduction(reduction)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects (N, C) logits, got shape {logits.shape}")
    n, c = logits.shape
    y = _class_indices(target, n)
    x = logits.data
    # numpy reduces a short row (few classes) one row at a time; over a column-major
    # copy the row max is a few whole-column passes instead, about twice as fast.
    m = np.maximum.reduce(np.asfortranarray(x) if c < 64 else x, axis=1, keepdims=True)
    z = x - m
    e = np.exp(z)
    s = np.add.reduce(e, axis=1, keepdims=True)
    rows = _arange(n)
    keep = None  # which rows count, when some are ignored
    # numpy takes a negative class as counting from the end: look for one (and for
    # ignored rows) up front only then; the default ignore_index, -100, is one of them.
    if 0 <= ignore_index < c or (y.dtype.kind == "i" and n and np.minimum.reduce(y) < 0):
        y, keep = _drop_ignored(y, ignore_index, c)
    try:
        picked = z[rows, y]
    except IndexError:  # a class past the end: an ignored row, or a label out of range
        y, keep = _drop_ignored(y, ignore_index, c)
        picked = z[rows, y]
    losses = np.log(s[:, 0]) - picked
    count = n
    if keep is not None:
        losses = np.where(keep, losses, 0)  # where, not *: NaN logits in an ignored row
        count = int(np.count_nonzero(keep))
    total = np.add.reduce(losses, axis=None)
    if reduction == "mean":  # over the rows that count: none gives NaN, as in PyTorch
        total = total / count if count else np.nan
    out = _make(np.asarray(total, dtype=x.dtype), (logits,), "cross_entropy", _cross_entropy_bw)
    if out._backward is not None:
        # The gradient, (softmax - onehot) / N for a mean, made now while e is warm in
        # cache: backward only scales it by the upstream gradient (1 for a loss).
        one = e.dtype.type(1)
        k = one / count if reduction == "mean" and count else one  # as _scale does for 1
        e /= s
        if k != one:
            e *= k
        e[rows, y] -= k
        if keep is not None:
            e *= keep[:, None]  # an ignored row has no gradient
        out._ctx = e
    return out


def _cross_entropy_bw(out: Tensor) -> None:
    g = out._ctx  # never written in place, so handing it out as the gradient is safe
    _accumulate(out._prev[0], g if out.grad == 1 else g * out.grad)


def binary_cross_entropy_with_logits(
    logits: Tensor, target: Any, reduction: str = "mean"
) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable op; targets in [0, 1]."""
    _check_reduction(reduction)
    x = logits.data
    y = _target(target, logits, "binary_cross_entropy_with_logits")
    # max(x, 0) - x*y + log(1 + exp(-|x|)): never exponentiates a large positive number.
    losses = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    parents = _with_target(logits, target)
    out = _make(_reduce(losses, reduction), parents, "bce_with_logits", _bce_bw)
    out._ctx = (reduction, y)
    return out


def _bce_bw(out: Tensor) -> None:
    logits = out._prev[0]
    y = out._ctx[1]
    scale = _scale(out, y.size)
    if logits.requires_grad:
        p = 0.5 * (1 + np.tanh(0.5 * logits.data))  # sigmoid, overflow-free
        _accumulate(logits, (p - y) * scale)
    _target_grad(out, -logits.data * scale)  # d/dy of -x*y: the rest has no y in it


def hinge_loss(scores: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """max(0, 1 - y * score) for targets of +1 / -1 (the micrograd demo's max-margin loss)."""
    _check_reduction(reduction)
    y = _target(target, scores, "hinge_loss")
    if not np.isin(y, (-1, 1)).all():
        raise ValueError("hinge_loss: targets must be +1 or -1")
    margins = 1 - y * scores.data
    out = _make(_reduce(np.maximum(margins, 0), reduction), (scores,), "hinge", _hinge_bw)
    out._ctx = (reduction, y, margins)
    return out


def _hinge_bw(out: Tensor) -> None:
    _, y, margins = out._ctx
    _accumulate(out._prev[0], -y * (margins > 0) * _scale(out, y.size))
