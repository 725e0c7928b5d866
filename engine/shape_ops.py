"""Tensor reductions, softmax and shape ops: each forward beside its backward."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gradscope.engine.autograd import accumulate as _accumulate

if TYPE_CHECKING:  # annotations only: tensor.py imports this module, never the reverse
    from gradscope.engine.tensor import Tensor

Dim = int | tuple[int, ...] | None


def _expand(g: np.ndarray, shape: tuple[int, ...], axis: Any, keepdims: bool) -> np.ndarray:
    """Undo a reduction's lost axes so g broadcasts against the input."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    elif axis is None and not keepdims:
        g = np.reshape(g, (1,) * len(shape))
    return g


def _reduction(a: Tensor, f: Any, op: str, backward: Any, dim: Dim, keepdim: bool) -> Tensor:
    if isinstance(dim, list | tuple):  # torch takes a list too; () means every axis
        dim = tuple(dim) or None
    out = a._derive(f(a.data, axis=dim, keepdims=keepdim), (a,), op, backward)
    out._ctx = (dim, keepdim)
    return out


def sum_(a: Tensor, dim: Dim, keepdim: bool) -> Tensor:
    f = _int_sum if a.data.dtype.kind in "bui" else np.sum
    return _reduction(a, f, "sum", _sum_bw, dim, keepdim)


def _int_sum(x: np.ndarray, axis: Dim, keepdims: bool) -> np.ndarray:
    return np.sum(x, axis=axis, keepdims=keepdims, dtype=np.int64)  # torch: any int sums in int64


def _sum_bw(out: Tensor) -> None:
    a = out._prev[0]
    _accumulate(a, np.broadcast_to(_expand(out.grad, a.shape, *out._ctx), a.shape))


def mean(a: Tensor, dim: Dim, keepdim: bool) -> Tensor:
    if a.data.dtype.kind != "f":
        raise RuntimeError(f"mean() needs a floating point tensor, got {a.data.dtype} (as torch)")
    return _reduction(a, np.mean, "mean", _mean_bw, dim, keepdim)


def _mean_bw(out: Tensor) -> None:
    a = out._prev[0]
    n = a.data.size // max(out.data.size, 1)
    _accumulate(a, np.broadcast_to(_expand(out.grad, a.shape, *out._ctx) / n, a.shape))


def max_(a: Tensor, dim: Dim, keepdim: bool) -> Tensor:
    return _reduction(a, np.max, "max", _max_bw, dim, keepdim)


def _max_bw(out: Tensor) -> None:
    a = out._prev[0]
    axis, keepdims = out._ctx
    m = _expand(out.data, a.shape, axis, keepdims)
    mask = (a.data == m).astype(a.data.dtype)  # in a's dtype, so the grad is too
    # Ties share the gradient equally (like torch.amax), so it sums to the output's.
    share = mask / mask.sum(axis=axis, keepdims=True)
    _accumulate(a, share * _expand(out.grad, a.shape, axis, keepdims))


def softmax(a: Tensor, dim: int) -> Tensor:
    e = np.exp(a.data - a.data.max(axis=dim, keepdims=True))
    e /= e.sum(axis=dim, keepdims=True)
    out = a._derive(e, (a,), "softmax", _softmax_bw)
    out._ctx = dim
    return out


def _softmax_bw(out: Tensor) -> None:
    s, g, axis = out.data, out.grad, out._ctx
    _accumulate(out._prev[0], s * (g - (g * s).sum(axis=axis, keepdims=True)))


def log_softmax(a: Tensor, dim: int) -> Tensor:
    z = a.data - a.data.max(axis=dim, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=dim, keepdims=True))
    out = a._derive(z, (a,), "log_softmax", _log_softmax_bw)
    out._ctx = dim
    return out


def _log_softmax_bw(out: Tensor) -> None:
    g, axis = out.grad, out._ctx
    _accumulate(out._prev[0], g - np.exp(out.data) * g.sum(axis=axis, keepdims=True))


def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    return a._derive(a.data.reshape(shape), (a,), "reshape", _reshape_bw)


def _reshape_bw(out: Tensor) -> None:
    a = out._prev[0]
    _accumulate(a, out.grad.reshape(a.shape))


def flatten(a: Tensor, start_dim: int, end_dim: int) -> Tensor:
    """torch.flatten: dims start_dim..end_dim (inclusive) merged into one."""
    nd = max(a.ndim, 1)
    start, end = start_dim % nd, end_dim % nd
    if not (-nd <= start_dim < nd and -nd <= end_dim < nd) or start > end:
        raise ValueError(f"flatten: dims {start_dim}..{end_dim} do not fit shape {a.shape}")
    merged = int(np.prod(a.shape[start : end + 1]))  # not -1: a 0-size dim makes it ambiguous
    shape = (*a.shape[:start], merged, *a.shape[end + 1 :]) if a.ndim else (1,)
    return a._derive(a.data.reshape(shape), (a,), "flatten", _reshape_bw)


def transpose(a: Tensor, dim0: int, dim1: int) -> Tensor:
    out = a._derive(np.swapaxes(a.data, dim0, dim1), (a,), "transpose", _transpose_bw)
    out._ctx = (dim0, dim1)
    return out


def _transpose_bw(out: Tensor) -> None:
    d0, d1 = out._ctx
    _accumulate(out._prev[0], np.swapaxes(out.grad, d0, d1))


def permute(a: Tensor, dims: tuple[int, ...]) -> Tensor:
    out = a._derive(np.transpose(a.data, dims), (a,), "permute", _permute_bw)
    out._ctx = dims
    return out


def _permute_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], np.transpose(out.grad, np.argsort(out._ctx)))


def index(a: Tensor, index: Any) -> Tensor:
    """a[index]; Tensor indices arrive as their arrays (Tensor.__getitem__ unwraps them)."""
    out = a._derive(a.data[index], (a,), "index", _index_bw)
    out._ctx = index
    return out


def _basic_index(index: Any) -> bool:
    """True when indexing cannot select an element twice (ints, slices, None, ...)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, int | slice | type(None)) or i is Ellipsis for i in parts)


def _index_bw(out: Tensor) -> None:
    a = out._prev[0]
    g = np.zeros_like(a.data)
    if _basic_index(out._ctx):
        g[out._ctx] = out.grad
    else:  # fancy indexing may repeat an element: add every occurrence
        np.add.at(g, out._ctx, out.grad)
    _accumulate(a, g)


def concat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis (torch.cat)."""
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    ts = tuple(tensors)
    out = ts[0]._derive(np.concatenate([t.data for t in ts], axis=dim), ts, "concat", _concat_bw)
    out._ctx = dim
    return out


def _concat_bw(out: Tensor) -> None:
    axis = out._ctx
    bounds = np.cumsum([p.shape[axis] for p in out._prev])[:-1]
    for p, g in zip(out._prev, np.split(out.grad, bounds, axis=axis)):
        _accumulate(p, g)
