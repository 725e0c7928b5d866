"""Tensor dtypes: what a new tensor's dtype is, and what two operands promote to (PyTorch's
rules, on numpy types). No Tensor import: engine.tensor builds on this module."""

from __future__ import annotations

from typing import Any

import numpy as np

bool_ = np.bool_
uint8 = np.uint8
int32 = np.int32
int64 = np.int64
float32 = np.float32
float64 = np.float64

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # bool < integer < floating, as in torch
_DEFAULT = {1: np.dtype(np.int64), 2: np.dtype(np.float32)}  # a Python number's type


def _numeric(arr: np.ndarray, data: Any) -> np.ndarray:
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"Tensor() needs numbers, got {type(data).__name__} of dtype {arr.dtype}")
    return arr


def new_array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    """A tensor's array as torch.tensor makes it: numpy data keeps its dtype, floats float32."""
    try:
        if dtype is not None:
            return _numeric(np.array(data, dtype=dtype, copy=copy or None), data)
        if isinstance(data, np.ndarray | np.generic):
            return _numeric(np.array(data, copy=copy or None), data)
        arr = np.array(data)  # Python data: ints give int64, bools bool, floats float64 ...
    except (TypeError, ValueError) as e:
        raise TypeError(f"Tensor() needs numbers, got {type(data).__name__}: {e}") from None
    # ... but torch's default float type is float32 (torch.tensor([0.5]).dtype).
    return _numeric(arr.astype(np.float32) if arr.dtype == np.float64 else arr, data)


def check_grad(dtype: np.dtype) -> None:
    """Refuse requires_grad on a non-floating dtype, with PyTorch's error."""
    if dtype.kind != "f":
        raise RuntimeError(
            f"Only Tensors of floating point dtype can require gradients, not {dtype}"
        )


def scalar_dtype(x: Any, like: np.dtype) -> np.dtype:
    """The dtype a Python number or numpy constant takes beside a tensor of dtype like.

    Non-Tensor operands are weak, as torch treats Python numbers: they take the tensor's
    dtype unless they are of a higher category (a float beside an integer tensor), which
    gives that category's default type (float32), or a numpy array's own float type.
    """
    kind = np.asarray(x).dtype.kind if not isinstance(x, bool | int | float) else None
    if kind is None:
        kind = "b" if isinstance(x, bool) else "i" if isinstance(x, int) else "f"
    cat = _CATEGORY.get(kind)
    if cat is None:
        raise TypeError(f"unsupported operand of dtype kind {kind!r}: {type(x).__name__}")
    if cat <= _CATEGORY[like.kind]:
        return like
    if isinstance(x, np.ndarray) and x.ndim:
        return x.dtype
    return _DEFAULT[cat]


def result_type(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """torch.result_type of two tensors' arrays: a 0-d one is weaker than a dimensioned one."""
    ca, cb = _CATEGORY[a.dtype.kind], _CATEGORY[b.dtype.kind]
    if (a.ndim == 0) == (b.ndim == 0):
        if ca == cb:
            return np.promote_types(a.dtype, b.dtype)
        return a.dtype if ca > cb else b.dtype
    big, small = (a, b) if a.ndim else (b, a)
    if _CATEGORY[small.dtype.kind] > _CATEGORY[big.dtype.kind]:
        return small.dtype
    return big.dtype


def promote(a: np.ndarray, b: np.ndarray, floating: bool = False) -> tuple[np.ndarray, ...]:
    """Both operands in their torch result type (at least float32 if floating)."""
    rt = result_type(a, b)
    if floating and rt.kind != "f":
        rt = np.dtype(np.float32)
    return a.astype(rt, copy=False), b.astype(rt, copy=False)
