"""Autograd machinery: the iterative topological sort both engines use, and the tensor
engine's switches (no_grad, anomaly detection) and its one `unbroadcast` helper."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

import numpy as np


class Node(Protocol):
    _prev: tuple


N = TypeVar("N", bound=Node)


def topological_order(root: N) -> list[N]:
    """Every node under root, children before parents, in the articles' DFS order."""
    # The articles' recursive build_topo, unrolled: each stack entry holds a node and an
    # iterator over its children (in call order, so the order and the picture are
    # deterministic); a node is appended once its iterator is exhausted.
    topo: list[N] = []
    visited = {root}
    stack: list[tuple[N, Iterator[N]]] = [(root, iter(root._prev))]
    while stack:
        v, children = stack[-1]
        for c in children:
            if c not in visited:
                visited.add(c)
                stack.append((c, iter(c._prev)))
                break
        else:
            stack.pop()
            topo.append(v)
    return topo


def backward_order(root: Any) -> list[Any]:
    """The ops under root, children before parents: topological_order without the leaves."""
    # Leaves (parameters, inputs, constants) have no backward to run, and their gradients
    # are written by the ops above them: skipping them halves the walk of an MLP's graph.
    # Otherwise the same DFS, so gradients accumulate in the same order, bit for bit.
    order: list[Any] = []
    visited = {root}
    stack: list[tuple[Any, Iterator[Any]]] = [(root, iter(root._prev))]
    while stack:
        v, children = stack[-1]
        for c in children:
            if c._backward is not None and c not in visited:
                visited.add(c)
                stack.append((c, iter(c._prev)))
                break
        else:
            stack.pop()
            order.append(v)
    return order


def run_backward(root: Any, g: np.ndarray) -> None:
    """Seed root with g and run every op's backward under it, parents before children."""
    order = backward_order(root)
    # Every op's output starts from no gradient: a second backward through a shared
    # intermediate would otherwise push the first one's gradient down again. Leaves
    # (the only nodes without a backward) accumulate across calls, as in torch.
    for t in order:
        if t._backward is not None:
            t.grad = None
    accumulate(root, g)
    check = _State.anomaly
    for t in reversed(order):
        if t._backward is not None and t.grad is not None:
            t._backward(t)
            if check:
                for p in t._prev:
                    if p.grad is not None and not np.isfinite(p.grad).all():
                        raise AnomalyError(t.op, t.label, "backward")


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
    return g if g.shape == shape else g.reshape(shape)


def accumulate(t: Any, g: np.ndarray, alias: np.ndarray | None = None) -> None:
    """Add g into t.grad in t's dtype (a new array, never in place: g may be shared).

    A leaf's first gradient is its own array, never a view or a read-only broadcast or
    alias (another node's grad passed through), so `p.grad *= 0.5` touches p alone.
    """
    if t.requires_grad:
        dt = t.data.dtype
        if g.dtype is not dt and g.dtype != dt:
            g = g.astype(dt)  # a float32 leaf keeps float32 grads beside float64 operands
        elif t.grad is None and t._backward is None and (g.base is not None or g is alias):
            g = g.copy()
        t.grad = g if t.grad is None else t.grad + g
