"""Tensor autograd over numpy: the scalar engine's design, one op per array operation.

Each op computes its forward with numpy and names a shared backward function (no closure
per node); `backward()` walks an iterative topological order. Gradients are plain numpy
arrays, stored by reference and never written in place by the engine (accumulation makes
a new array), so an op may hand the same array to two parents safely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gradscope.engine import shape_ops as _shape
from gradscope.engine.autograd import AnomalyError, _State, backward_order, unbroadcast
from gradscope.engine.autograd import accumulate as _accumulate

float32 = np.float32
float64 = np.float64

Backward = Callable[["Tensor"], None]
ArrayLike = Any


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
            g = np.ones_like(self.data) if self.data.ndim else np.array(1, self.data.dtype)
        else:
            g = np.broadcast_to(_as_array(grad, self.data.dtype), self.shape)
        _accumulate(self, g)
        check = _State.anomaly
        for t in reversed(backward_order(self)):
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


def concat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis (torch.cat)."""
    return _shape.concat(tensors, dim)


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
