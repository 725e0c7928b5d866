"""Tensor autograd over numpy: the scalar engine's design, one op per array operation.

Each op computes its forward with numpy and names a shared backward function (no closure
per node); `backward()` walks an iterative topological order. Gradients are plain numpy
arrays, stored by reference and never written in place by the engine (accumulation makes
a new array), so an op may hand the same array to two parents safely.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from engine.autograd import topological_order

float32 = np.float32
float64 = np.float64

Backward = Callable[["Tensor"], None]
ArrayLike = Any


class _State:
    """Process-wide switches: gradient recording and anomaly detection."""

    grad_enabled = True
    anomaly = False


class AnomalyError(FloatingPointError):
    """An op produced NaN or Inf while anomaly detection was on."""

    def __init__(self, op: str, label: str, phase: str) -> None:
        self.op, self.label, self.phase = op, label, phase
        where = f" ({label})" if label else ""
        super().__init__(f"{phase} of op '{op}'{where} produced NaN or Inf")


class no_grad(contextlib.ContextDecorator):
    """Context manager / decorator: ops inside record no graph (inference, updates)."""

    def __enter__(self) -> None:
        self.prev = _State.grad_enabled
        _State.grad_enabled = False

    def __exit__(self, *exc: object) -> None:
        _State.grad_enabled = self.prev


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise AnomalyError naming the first op whose output or gradient holds NaN or Inf."""
    prev = _State.anomaly
    _State.anomaly = True
    try:
        yield
    finally:
        _State.anomaly = prev


def is_grad_enabled() -> bool:
    return _State.grad_enabled


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a broadcast gradient back down to the operand's shape (every binary op uses it)."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _as_array(data: ArrayLike, dtype: Any) -> np.ndarray:
    """A numeric numpy array, refusing strings, objects and other non-numbers by name."""
    try:
        arr = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Tensor() needs numbers, got {type(data).__name__}: {e}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"Tensor() needs numbers, got {type(data).__name__} of dtype {arr.dtype}")
    return arr


class Tensor:
    """An n-dimensional array that records the ops that made it, for back-propagation."""

    __slots__ = ("_backward", "_ctx", "_prev", "data", "grad", "label", "op", "requires_grad")
    __array_ufunc__ = None  # so `ndarray + Tensor` defers to Tensor.__radd__

    def __init__(
        self, data: ArrayLike, requires_grad: bool = False, dtype: Any = float32, label: str = ""
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, not {self.data.dtype}")
        self.requires_grad = requires_grad
        self.grad: np.ndarray | None = None
        self.label = label
        self.op = ""
        self._prev: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self._ctx: Any = None

    # -- plumbing ----------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self.op!r}" if self.op else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}{grad}{op})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data, dtype=self.data.dtype)

    def zero_grad(self) -> None:
        self.grad = None

    def backward(self, grad: ArrayLike | None = None) -> None:
        """Accumulate d(self)/d(leaf) into every tensor below that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() needs a grad for a non-scalar {self.shape}")
            g = np.ones_like(self.data)
        else:
            g = np.broadcast_to(_as_array(grad, self.data.dtype), self.shape)
        _accumulate(self, g)
        check = _State.anomaly
        for t in reversed(topological_order(self)):
            if t._backward is not None and t.grad is not None:
                t._backward(t)
                if check:
                    for p in t._prev:
                        if p.grad is not None and not np.isfinite(p.grad).all():
                            raise AnomalyError(t.op, t.label, "backward")

    # -- elementwise binary ops (Python operators) -------------------------------------

    def __add__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        return _make(self.data + o.data, (self, o), "+", _add_bw)

    def __sub__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        return _make(self.data - o.data, (self, o), "-", _sub_bw)

    def __mul__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        return _make(self.data * o.data, (self, o), "*", _mul_bw)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        return _make(self.data / o.data, (self, o), "/", _div_bw)

    def __pow__(self, k: ArrayLike) -> Tensor:
        if isinstance(k, Tensor):
            return _make(self.data**k.data, (self, k), "**", _powt_bw)
        if isinstance(k, bool) or not isinstance(k, int | float):
            raise TypeError(f"exponent must be a number or a Tensor, got {type(k).__name__}")
        out = _make(self.data**k, (self,), f"**{k}", _pow_bw)
        out._ctx = k
        return out

    def __matmul__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        if self.ndim == 0 or o.ndim == 0:
            raise ValueError("matmul needs tensors of at least one dimension")
        return _make(self.data @ o.data, (self, o), "@", _matmul_bw)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _tensor(other, self) + self

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _tensor(other, self) - self

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _tensor(other, self) * self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _tensor(other, self) / self

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _tensor(other, self) @ self

    def __neg__(self) -> Tensor:
        return _make(-self.data, (self,), "neg", _neg_bw)

    # -- elementwise unary ops ---------------------------------------------------------

    def exp(self) -> Tensor:
        return _make(np.exp(self.data), (self,), "exp", _exp_bw)

    def log(self) -> Tensor:
        return _make(np.log(self.data), (self,), "log", _log_bw)

    def tanh(self) -> Tensor:
        return _make(np.tanh(self.data), (self,), "tanh", _tanh_bw)

    def relu(self) -> Tensor:
        # x * mask beats np.maximum (no NaN bookkeeping; NaN still propagates); a mask of
        # the same float dtype keeps both multiplies on numpy's fast same-type loops, and
        # the backward reuses it.
        mask = (self.data > 0).astype(self.data.dtype)
        out = _make(self.data * mask, (self,), "relu", _relu_bw)
        out._ctx = mask
        return out

    def sigmoid(self) -> Tensor:
        # 0.5 * (1 + tanh(x / 2)): exact, one transcendental, and no overflow at any x.
        s = np.tanh(self.data * 0.5)
        s *= 0.5
        s += 0.5
        return _make(s, (self,), "sigmoid", _sigmoid_bw)

    # -- reductions --------------------------------------------------------------------

    def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        out = _make(np.sum(self.data, axis=dim, keepdims=keepdim), (self,), "sum", _sum_bw)
        out._ctx = (dim, keepdim)
        return out

    def mean(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        out = _make(np.mean(self.data, axis=dim, keepdims=keepdim), (self,), "mean", _mean_bw)
        out._ctx = (dim, keepdim)
        return out

    def max(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        """Largest values (like torch.amax: values only; ties share the gradient)."""
        out = _make(np.max(self.data, axis=dim, keepdims=keepdim), (self,), "max", _max_bw)
        out._ctx = (dim, keepdim)
        return out

    def softmax(self, dim: int = -1) -> Tensor:
        e = np.exp(self.data - self.data.max(axis=dim, keepdims=True))
        e /= e.sum(axis=dim, keepdims=True)
        out = _make(e, (self,), "softmax", _softmax_bw)
        out._ctx = dim
        return out

    def log_softmax(self, dim: int = -1) -> Tensor:
        z = self.data - self.data.max(axis=dim, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=dim, keepdims=True))
        out = _make(z, (self,), "log_softmax", _log_softmax_bw)
        out._ctx = dim
        return out

    # -- shape ops ---------------------------------------------------------------------

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        return _make(self.data.reshape(shape), (self,), "reshape", _reshape_bw)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two axes (PyTorch's transpose); `.T` reverses them all."""
        out = _make(np.swapaxes(self.data, dim0, dim1), (self,), "transpose", _transpose_bw)
        out._ctx = (dim0, dim1)
        return out

    def permute(self, *dims: int) -> Tensor:
        out = _make(np.transpose(self.data, dims), (self,), "permute", _permute_bw)
        out._ctx = dims
        return out

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        out = _make(self.data[index], (self,), "index", _index_bw)
        out._ctx = index
        return out


# -- graph construction ------------------------------------------------------------------


def _tensor(x: ArrayLike, like: Tensor) -> Tensor:
    """Wrap a number or array as a constant of like's dtype (Python numbers stay weak)."""
    if isinstance(x, Tensor):
        return x
    t = object.__new__(Tensor)
    t.data = np.asarray(x, dtype=like.data.dtype)
    t.requires_grad = False
    t.grad = None
    t.label = ""
    t.op = ""
    t._prev = ()
    t._backward = None
    t._ctx = None
    return t


def _make(data: np.ndarray, prev: tuple[Tensor, ...], op: str, backward: Backward) -> Tensor:
    """An op's result; it joins the graph only if grad is on and an operand needs grad."""
    out = object.__new__(Tensor)
    out.data = data if type(data) is np.ndarray else np.asarray(data)
    out.grad = None
    out.label = ""
    out.op = op
    out._ctx = None
    out.requires_grad = False
    out._prev = ()
    out._backward = None
    if _State.grad_enabled:
        for p in prev:  # a plain loop: any() with a generator costs more on tiny nets
            if p.requires_grad:
                out.requires_grad = True
                out._prev = prev
                out._backward = backward
                break
    if _State.anomaly and out.data.dtype.kind == "f" and not np.isfinite(out.data).all():
        raise AnomalyError(op, "", "forward")
    return out


def _accumulate(t: Tensor, g: np.ndarray) -> None:
    """Add g into t.grad (new array, never in place: g may be shared with another tensor)."""
    if t.requires_grad:
        t.grad = g if t.grad is None else t.grad + g


def concat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis (torch.cat)."""
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    ts = tuple(tensors)
    out = _make(np.concatenate([t.data for t in ts], axis=dim), ts, "concat", _concat_bw)
    out._ctx = dim
    return out


cat = concat


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = float32) -> Tensor:
    """PyTorch's torch.tensor: a new leaf tensor."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


# -- backward functions, one per op ------------------------------------------------------


def _add_bw(out: Tensor) -> None:
    a, b = out._prev
    _accumulate(a, unbroadcast(out.grad, a.shape))
    _accumulate(b, unbroadcast(out.grad, b.shape))


def _sub_bw(out: Tensor) -> None:
    a, b = out._prev
    _accumulate(a, unbroadcast(out.grad, a.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(-out.grad, b.shape))


def _mul_bw(out: Tensor) -> None:
    a, b = out._prev
    if a.requires_grad:
        _accumulate(a, unbroadcast(out.grad * b.data, a.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(out.grad * a.data, b.shape))


def _div_bw(out: Tensor) -> None:
    a, b = out._prev
    g = out.grad / b.data
    if a.requires_grad:
        _accumulate(a, unbroadcast(g, a.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(-g * out.data, b.shape))


def _pow_bw(out: Tensor) -> None:
    (a,) = out._prev
    k = out._ctx
    _accumulate(a, out.grad * (k * a.data ** (k - 1)))


def _powt_bw(out: Tensor) -> None:
    a, b = out._prev
    if a.requires_grad:
        _accumulate(a, unbroadcast(out.grad * b.data * a.data ** (b.data - 1), a.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(out.grad * out.data * np.log(a.data), b.shape))


def _neg_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], -out.grad)


def _matmul_bw(out: Tensor) -> None:
    a, b = out._prev
    if a.ndim == 1 and b.ndim == 1:  # a dot product
        _accumulate(a, out.grad * b.data)
        _accumulate(b, out.grad * a.data)
        return
    # Treat 1-D operands as matrices, as numpy's matmul does, then undo it.
    A = a.data if a.ndim > 1 else a.data[None, :]
    B = b.data if b.ndim > 1 else b.data[:, None]
    g = out.grad
    if a.ndim == 1:
        g = np.expand_dims(g, -2)
    if b.ndim == 1:
        g = np.expand_dims(g, -1)
    if a.requires_grad:
        _accumulate(a, unbroadcast(g @ np.swapaxes(B, -1, -2), A.shape).reshape(a.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(np.swapaxes(A, -1, -2) @ g, B.shape).reshape(b.shape))


def _exp_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], out.grad * out.data)


def _log_bw(out: Tensor) -> None:
    a = out._prev[0]
    _accumulate(a, out.grad / a.data)


def _tanh_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], out.grad * (1 - out.data * out.data))


def _relu_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], out.grad * out._ctx)


def _sigmoid_bw(out: Tensor) -> None:
    s = out.data
    _accumulate(out._prev[0], out.grad * s * (1 - s))


def _expand(g: np.ndarray, shape: tuple[int, ...], axis: Any, keepdims: bool) -> np.ndarray:
    """Undo a reduction's lost axes so g broadcasts against the input."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    elif axis is None and not keepdims:
        g = np.reshape(g, (1,) * len(shape))
    return g


def _sum_bw(out: Tensor) -> None:
    a = out._prev[0]
    axis, keepdims = out._ctx
    _accumulate(a, np.broadcast_to(_expand(out.grad, a.shape, axis, keepdims), a.shape))


def _mean_bw(out: Tensor) -> None:
    a = out._prev[0]
    axis, keepdims = out._ctx
    n = a.data.size // max(out.data.size, 1)
    g = _expand(out.grad, a.shape, axis, keepdims) / n
    _accumulate(a, np.broadcast_to(g, a.shape))


def _max_bw(out: Tensor) -> None:
    a = out._prev[0]
    axis, keepdims = out._ctx
    m = _expand(out.data, a.shape, axis, keepdims)
    mask = a.data == m
    # Ties share the gradient equally (like torch.amax), so it sums to the output's.
    share = mask / mask.sum(axis=axis, keepdims=True)
    _accumulate(a, share * _expand(out.grad, a.shape, axis, keepdims))


def _softmax_bw(out: Tensor) -> None:
    s, g, axis = out.data, out.grad, out._ctx
    _accumulate(out._prev[0], s * (g - (g * s).sum(axis=axis, keepdims=True)))


def _log_softmax_bw(out: Tensor) -> None:
    g, axis = out.grad, out._ctx
    _accumulate(out._prev[0], g - np.exp(out.data) * g.sum(axis=axis, keepdims=True))


def _reshape_bw(out: Tensor) -> None:
    a = out._prev[0]
    _accumulate(a, out.grad.reshape(a.shape))


def _transpose_bw(out: Tensor) -> None:
    d0, d1 = out._ctx
    _accumulate(out._prev[0], np.swapaxes(out.grad, d0, d1))


def _permute_bw(out: Tensor) -> None:
    _accumulate(out._prev[0], np.transpose(out.grad, np.argsort(out._ctx)))


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


def _concat_bw(out: Tensor) -> None:
    axis = out._ctx
    bounds = np.cumsum([p.shape[axis] for p in out._prev])[:-1]
    for p, g in zip(out._prev, np.split(out.grad, bounds, axis=axis)):
        _accumulate(p, g)
