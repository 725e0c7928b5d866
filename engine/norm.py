"""Batch normalisation and dropout, PyTorch's semantics, forward beside backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradscope.engine.autograd import accumulate as _accumulate
from gradscope.engine.module import generator
from gradscope.engine.tensor import Tensor, _make


def _array(t: Any) -> np.ndarray | None:
    return t.data if isinstance(t, Tensor) else t


def batch_norm(
    x: Tensor,
    running_mean: Tensor | np.ndarray | None,
    running_var: Tensor | np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (axis 1) of x, then scale by weight and shift by bias.

    Training uses the batch's statistics (the biased variance) and moves the running ones,
    in place, toward the batch's mean and unbiased variance by `momentum`; evaluation uses
    the running statistics. As torch.nn.functional.batch_norm.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects an (N, C, ...) input, got shape {x.shape}")
    c = x.shape[1]
    rm, rv = _array(running_mean), _array(running_var)
    for name, t in (("running_mean", rm), ("running_var", rv), ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"batch_norm: {name} shape {t.shape} does not fit input {x.shape}")
    xd = x.data
    axes = (0, *range(2, x.ndim))
    shape = (1, c) + (1,) * (x.ndim - 2)
    n = xd.size // c if c else 0
    if training:
        if n <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, "
                f"got input shape {x.shape}"
            )
        mean = xd.mean(axis=axes)
        xc = xd - mean.reshape(shape)
        var = _channel_dot(xc, xc) / n
        if rm is not None:
            rm *= 1 - momentum
            rm += momentum * mean
        if rv is not None:
            rv *= 1 - momentum
            rv += (momentum * n / (n - 1)) * var
    else:
        if rm is None or rv is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var")
        xc = xd - rm.reshape(shape).astype(xd.dtype, copy=False)
        var = rv.astype(xd.dtype, copy=False)
    invstd = 1 / np.sqrt(var + eps)
    scale = invstd if weight is None else invstd * weight.data
    y = xc * scale.reshape(shape)  # (x - mean) * invstd * weight in one pass
    if bias is not None:
        y += bias.data.reshape(shape)
    prev = tuple(t for t in (x, weight, bias) if t is not None)
    out = _make(y, prev, "batch_norm", _batch_norm_bw)
    if out._backward is not None:
        out._ctx = (training, xc, invstd, scale, axes, shape, weight is not None, bias is not None)
    return out


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum(a * b) per channel (axis 1), without the product's temporary (einsum: 4x faster)."""
    axes = "nc" + "hwdefg"[: a.ndim - 2]
    return np.einsum(f"{axes},{axes}->c", a, b)


def _batch_norm_bw(out: Tensor) -> None:
    training, xc, invstd, scale, axes, shape, has_w, has_b = out._ctx
    x = out._prev[0]
    gy = out.grad
    gb = np.add.reduce(gy, axis=axes)
    dot = _channel_dot(gy, xc)  # sum(gy * xhat) is dot * invstd
    if has_w and out._prev[1].requires_grad:
        _accumulate(out._prev[1], dot * invstd)
    if has_b and out._prev[-1].requires_grad:
        _accumulate(out._prev[-1], gb)
    if x.requires_grad:
        gx = gy * scale.reshape(shape)
        if training:  # the batch's mean and variance depend on x too:
            # scale * (gy - mean(gy) - xhat * mean(gy * xhat)), xhat = xc * invstd
            n = xc.size // xc.shape[1]
            gx -= xc * (scale * invstd * invstd * dot / n).reshape(shape)
            gx -= (scale * gb / n).reshape(shape)
        _accumulate(x, gx)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), in training only.

    The mask comes from the generator engine.manual_seed seeds.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    dt = x.data.dtype if x.data.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    if p == 1:
        mask = np.zeros(x.shape, dt)
    else:
        mask = generator().random(x.shape, dtype=dt) >= dt.type(p)
        mask = mask.astype(dt)
        mask *= dt.type(1 / (1 - p))
    out = _make(x.data * mask, (x,), "dropout", _dropout_bw)
    out._ctx = mask
    return out


def _dropout_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], out.grad * out._ctx)
