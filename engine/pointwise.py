"""Tensor pointwise math beyond + - * /: exp, log, tanh, relu, sigmoid and powers, each
forward beside its backward (engine.tensor's methods call these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gradscope.engine.autograd import accumulate as _accumulate
from gradscope.engine.autograd import unbroadcast
from gradscope.engine.dtypes import float32, promote

if TYPE_CHECKING:  # annotations only: tensor.py imports this module, never the reverse
    from gradscope.engine.tensor import Tensor


def _floating(a: np.ndarray) -> np.ndarray:
    """a, or a as float32 if it is integer (torch's exp of an int tensor is float32)."""
    return a if a.dtype.kind == "f" else a.astype(float32)


def exp(a: Tensor) -> Tensor:
    return a._derive(np.exp(_floating(a.data)), (a,), "exp", _exp_bw)


def _exp_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], out.grad * out.data)


def log(a: Tensor) -> Tensor:
    return a._derive(np.log(_floating(a.data)), (a,), "log", _log_bw)


def _log_bw(out: Tensor) -> None:
    a = out._prev[0]
    _accumulate(a, out.grad / a.data)


def tanh(a: Tensor) -> Tensor:
    return a._derive(np.tanh(_floating(a.data)), (a,), "tanh", _tanh_bw)


def _tanh_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], out.grad * (1 - out.data * out.data))


def relu(a: Tensor) -> Tensor:
    # x * mask beats np.maximum (no NaN bookkeeping; NaN still propagates); a mask of
    # the same dtype keeps both multiplies on numpy's fast same-type loops, and the
    # backward reuses it.
    mask = (a.data > 0).astype(a.data.dtype)
    out = a._derive(a.data * mask, (a,), "relu", _relu_bw)
    out._ctx = mask
    return out


def _relu_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], out.grad * out._ctx)


def sigmoid(a: Tensor) -> Tensor:
    # 0.5 * (1 + tanh(x / 2)): exact, one transcendental, and no overflow at any x.
    s = np.tanh(_floating(a.data) * 0.5)
    s *= 0.5
    s += 0.5
    return a._derive(s, (a,), "sigmoid", _sigmoid_bw)


def _sigmoid_bw(out: Tensor) -> None:
    s = out.data
    _accumulate(out._prev[0], out.grad * s * (1 - s))


def pow_(a: Tensor, k: Any) -> Tensor:
    """a ** k for a number k."""
    if isinstance(k, bool | np.bool_) or not isinstance(k, int | float | np.number):
        raise TypeError(f"exponent must be a number or a Tensor, got {type(k).__name__}")
    x = a.data
    if x.dtype.kind != "f" and not isinstance(k, int | np.integer):
        x = x.astype(float32)  # an int tensor ** 0.5 is float32 in torch
    out = a._derive(x**k, (a,), f"**{k}", _pow_bw)
    out._ctx = k
    return out


def _pow_bw(out: Tensor) -> None:
    (a,) = out._prev
    k = out._ctx
    if k == 0:  # x ** 0 is constant: 0 * x ** -1 would be NaN at x = 0
        _accumulate(a, np.zeros_like(out.grad))
        return
    _accumulate(a, out.grad * (k * a.data ** (k - 1)))


def pow_tensor(a: Tensor, b: Tensor) -> Tensor:
    """a ** b for a tensor exponent."""
    x, y = a.data, b.data
    if x.dtype is not y.dtype:
        x, y = promote(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):  # torch warns of neither
        return a._derive(x**y, (a, b), "**", _powt_bw)


def _powt_bw(out: Tensor) -> None:
    # PyTorch's pow_backward: d/da is 0 where b == 0, d/db is 0 where a == 0 and b >= 0.
    a, b = out._prev
    with np.errstate(divide="ignore", invalid="ignore"):
        if a.requires_grad:
            ga = np.where(b.data == 0, 0, out.grad * b.data * a.data ** (b.data - 1))
            _accumulate(a, unbroadcast(ga, a.shape))
        if b.requires_grad:
            zero = (a.data == 0) & (b.data >= 0)
            gb = out.grad * np.where(zero, 0, out.data * np.log(a.data))
            _accumulate(b, unbroadcast(gb, b.shape))
