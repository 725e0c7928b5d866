"""Tensor autograd over numpy: the scalar engine's design, one op per array operation.

Each op computes its forward with numpy and names a shared backward function (no closure
per node); `backward()` walks an iterative topological order. Gradients are plain numpy
arrays, never written in place by the engine (accumulation makes a new array), so an op
may hand the same array to two parents; a leaf's own grad is its alone, the user's to
write in place. Dtypes and promotion follow PyTorch (engine.dtypes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gradscope.engine import pointwise as _pw
from gradscope.engine import shape_ops as _shape
from gradscope.engine.autograd import AnomalyError, _State, run_backward, unbroadcast
from gradscope.engine.autograd import accumulate as _accumulate
from gradscope.engine.dtypes import (  # noqa: F401 (re-exported)
    check_grad,
    float32,
    float64,
    int64,
    new_array,
    promote,
    scalar_dtype,
)

Backward = Callable[["Tensor"], None]
ArrayLike = Any


class Tensor:
    """An n-dimensional array that records the ops that made it, for back-propagation."""

    __slots__ = (
        "__weakref__",
        "_backward",
        "_ctx",
        "_prev",
        "data",
        "grad",
        "label",
        "op",
        "requires_grad",
    )
    __array_ufunc__ = None  # so `ndarray + Tensor` defers to Tensor.__radd__

    def __init__(
        self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None, label: str = ""
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data = new_array(data, dtype)  # a copy, as torch.tensor: never the caller's array
        if requires_grad:
            check_grad(self.data.dtype)
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
        """The same data (shared memory, as in torch), cut from the graph."""
        return _tensor(self.data, self)

    def zero_grad(self) -> None:
        self.grad = None

    def backward(self, gradient: ArrayLike | None = None, retain_graph: bool | None = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf below that requires grad, as torch does.

        The graph is kept (as with retain_graph=True, which is accepted and implied): each
        call starts every op's output from no gradient, so backward of loss1 then loss2 on
        a shared trunk gives the leaves the sum of both, never one of them twice.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() needs a grad for a non-scalar {self.shape}")
            g = np.ones_like(self.data) if self.data.ndim else np.array(1, self.data.dtype)
        else:
            g = gradient.data if isinstance(gradient, Tensor) else gradient
            g = np.broadcast_to(new_array(g, self.data.dtype, copy=False), self.shape)
        run_backward(self, g)

    # -- elementwise binary ops (Python operators) -------------------------------------

    def __add__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        a, b = self.data, o.data
        if a.dtype is not b.dtype:
            a, b = promote(a, b)
        return _make(a + b, (self, o), "+", _add_bw)

    def __sub__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        a, b = self.data, o.data
        if a.dtype is not b.dtype:
            a, b = promote(a, b)
        return _make(a - b, (self, o), "-", _sub_bw)

    def __mul__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        a, b = self.data, o.data
        if a.dtype is not b.dtype:
            a, b = promote(a, b)
        return _make(a * b, (self, o), "*", _mul_bw)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        o = _tensor(other, self)
        a, b = self.data, o.data
        if a.dtype is not b.dtype or a.dtype.kind != "f":
            a, b = promote(a, b, floating=True)  # int / int is a float32 division in torch
        return _make(a / b, (self, o), "/", _div_bw)

    def __pow__(self, k: ArrayLike) -> Tensor:
        return _pw.pow_tensor(self, k) if isinstance(k, Tensor) else _pw.pow_(self, k)

    def __rpow__(self, base: ArrayLike) -> Tensor:
        return _tensor(base, self) ** self

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
        return _pw.exp(self)

    def log(self) -> Tensor:
        return _pw.log(self)

    def tanh(self) -> Tensor:
        return _pw.tanh(self)

    def relu(self) -> Tensor:
        return _pw.relu(self)

    def sigmoid(self) -> Tensor:
        return _pw.sigmoid(self)

    # -- reductions and shape ops (engine.shape_ops: forward beside backward) ---------

    def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        return _shape.sum_(self, dim, keepdim)

    def mean(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        return _shape.mean(self, dim, keepdim)

    def max(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        """Largest values (like torch.amax: values only; ties share the gradient)."""
        return _shape.max_(self, dim, keepdim)

    def softmax(self, dim: int = -1) -> Tensor:
        return _shape.softmax(self, dim)

    def log_softmax(self, dim: int = -1) -> Tensor:
        return _shape.log_softmax(self, dim)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        return _shape.reshape(self, shape)  # type: ignore[arg-type]

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two axes (PyTorch's transpose); `.T` reverses them all."""
        return _shape.transpose(self, dim0, dim1)

    def permute(self, *dims: int) -> Tensor:
        return _shape.permute(self, dims)

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return _shape.index(self, index)

    def _derive(self, data: np.ndarray, prev: tuple[Tensor, ...], op: str, bw: Backward) -> Tensor:
        """_make for engine.shape_ops, which reaches it through its operand, not an import."""
        return _make(data, prev, op, bw)


# -- graph construction ------------------------------------------------------------------


def _tensor(x: ArrayLike, like: Tensor) -> Tensor:
    """Wrap a number or array as a constant beside like (weak: see dtypes.scalar_dtype)."""
    if isinstance(x, Tensor):
        return x
    dt = like.data.dtype
    t = object.__new__(Tensor)
    # Beside a floating tensor (the hot path), any constant simply takes its dtype.
    t.data = np.asarray(x, dtype=dt if dt.kind == "f" else scalar_dtype(x, dt))
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


def concat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis (torch.cat)."""
    return _shape.concat(tensors, dim)


cat = concat


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """PyTorch's torch.tensor: a new leaf tensor of a copy of data."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def from_numpy(arr: np.ndarray) -> Tensor:
    """torch.from_numpy: a tensor sharing arr's memory (and dtype): writes show through."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy() expects an np.ndarray, got {type(arr).__name__}")
    t = Tensor(np.empty(0, arr.dtype))  # the dtype check, without copying arr
    t.data = arr
    return t


# -- backward functions, one per op ------------------------------------------------------


def _add_bw(out: Tensor) -> None:
    a, b = out._prev
    # out.grad passes through as is: accumulate copies it for a leaf (alias), not for an op.
    _accumulate(a, unbroadcast(out.grad, a.shape), out.grad)
    _accumulate(b, unbroadcast(out.grad, b.shape), out.grad)


def _sub_bw(out: Tensor) -> None:
    a, b = out._prev
    _accumulate(a, unbroadcast(out.grad, a.shape), out.grad)
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
