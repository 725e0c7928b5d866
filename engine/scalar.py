"""Scalar autograd: micrograd's `Value`, made deterministic, iterative and fast.

The graph a learner sees is exactly the articles' graph: `a - b` is `a + (b * -1)`,
`a / b` is `a * b**-1`, and a plain number is wrapped in its own `Value` box. What
changed is how it runs: `__slots__`, one shared backward function per op instead of a
closure per node, children kept in a tuple (a deterministic order, where the articles
use a set), and an iterative topological sort so a 100,000-node chain back-propagates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from typing import TypeVar

from gradscope.engine.autograd import topological_order

Number = int | float
E = TypeVar("E", bound=Exception)


def _coerce(data: object) -> float:
    """Turn a real number into a float, refusing everything else by name."""
    if isinstance(data, bool) or not isinstance(data, Real):
        raise TypeError(f"Value() needs a real number, got {type(data).__name__} {data!r}")
    return float(data)


def _failed(error: E, op: str) -> E:
    """The error an op raises instead of making NaN/Inf, naming the op (the node's `op`)
    as data in `error.op`, so callers never parse the message."""
    error.op = op  # type: ignore[attr-defined]
    return error


def _leaf_backward(v: Value) -> None:
    """A leaf has nothing to pass its gradient on to."""


class Value:
    """A scalar that remembers the ops that made it, for back-propagation."""

    # _arg: the exponent of a `**` node (only pow sets it).
    __slots__ = ("data", "grad", "label", "op", "_prev", "_backward", "_arg")

    def __init__(self, data: Number, label: str = "") -> None:
        self.data = data if type(data) is float else _coerce(data)
        self.grad = 0.0
        self.label = label
        self.op = ""
        self._prev: tuple[Value, ...] = ()
        self._backward: Callable[[Value], None] = _leaf_backward

    @property
    def children(self) -> tuple[Value, ...]:
        """The operands this value was computed from, in call order."""
        return self._prev

    def __repr__(self) -> str:
        name = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{name})"

    # -- ops: forward and backward side by side --------------------------------------

    def __add__(self, other: Value | Number) -> Value:
        other = other if type(other) is Value else Value(other)
        return _node(self.data + other.data, (self, other), "+", _add_backward)

    def __mul__(self, other: Value | Number) -> Value:
        other = other if type(other) is Value else Value(other)
        return _node(self.data * other.data, (self, other), "*", _mul_backward)

    def __pow__(self, k: Number) -> Value:
        if isinstance(k, Value):
            raise TypeError("Value ** Value is not supported: the exponent must be an int or float")
        if isinstance(k, bool) or not isinstance(k, Real):
            raise TypeError(f"exponent must be an int or float, got {type(k).__name__} {k!r}")
        x = self.data
        if x == 0.0 and k < 0:
            msg = f"{_name(self)} is 0 and cannot be raised to the power {k}"
            raise _failed(ZeroDivisionError(msg), f"**{k}")
        if x < 0.0 and not float(k).is_integer():
            msg = f"{_name(self)} = {x} is negative: a fractional power {k} is not real"
            raise _failed(ValueError(msg), f"**{k}")
        try:
            data = x**k
        except OverflowError:
            msg = f"{_name(self)} ** {k} overflows a float (base {x})"
            raise _failed(OverflowError(msg), f"**{k}") from None
        out = _node(data, (self,), f"**{k}", _pow_backward)
        out._arg = k
        return out

    def tanh(self) -> Value:
        x = self.data
        # The article's formula, kept for bit-identical numbers; exp(2x) would overflow
        # past |x| ~ 355, and beyond |x| = 20 the formula already rounds to +-1.
        if -20.0 < x < 20.0:
            e = math.exp(2 * x)
            t = (e - 1) / (e + 1)
        else:
            t = math.copysign(1.0, x)
        return _node(t, (self,), "tanh", _tanh_backward)

    def relu(self) -> Value:
        x = self.data
        return _node(x if x > 0.0 else 0.0, (self,), "relu", _relu_backward)

    def sigmoid(self) -> Value:
        x = self.data
        # Two branches so that exp never overflows, whatever the sign of x.
        if x >= 0.0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return _node(s, (self,), "sigmoid", _sigmoid_backward)

    def exp(self) -> Value:
        try:
            data = math.exp(self.data)
        except OverflowError:
            msg = f"exp({_name(self)}) overflows a float (x = {self.data})"
            raise _failed(OverflowError(msg), "exp") from None
        return _node(data, (self,), "exp", _exp_backward)

    def log(self) -> Value:
        x = self.data
        if not x > 0.0:
            raise _failed(ValueError(f"log of a non-positive value: {_name(self)} = {x}"), "log")
        return _node(math.log(x), (self,), "log", _log_backward)

    # -- composite ops, defined as the articles define them ---------------------------

    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | Number) -> Value:
        if type(other) is not Value:
            other = Value(other)
        return self * other**-1

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return other + (-self)

    def __rtruediv__(self, other: Number) -> Value:
        return other * self**-1

    # -- gradients --------------------------------------------------------------------

    def backward(self) -> None:
        """Set this value's grad to 1 and accumulate gradients into everything below it."""
        topo = topological_order(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward(v)

    def zero_grad(self) -> None:
        """Reset the grad of this value and of every value it was computed from."""
        for v in topological_order(self):
            v.grad = 0.0


Backward = Callable[["Value"], None]


def _node(data: float, prev: tuple[Value, ...], op: str, backward: Backward) -> Value:
    """Make an op's result without re-validating data the op computed itself."""
    out = object.__new__(Value)
    out.data = data
    out.grad = 0.0
    out.label = ""
    out.op = op
    out._prev = prev
    out._backward = backward
    return out


def _name(v: Value) -> str:
    return f"Value {v.label!r}" if v.label else "the Value"


# Backward functions, one per op, shared by every node (no closure per node). Each
# mirrors the article's `_backward` expression term for term, so the floats agree.


def _add_backward(out: Value) -> None:
    a, b = out._prev
    a.grad += out.grad
    b.grad += out.grad


def _mul_backward(out: Value) -> None:
    a, b = out._prev
    a.grad += b.data * out.grad
    b.grad += a.data * out.grad


def _pow_backward(out: Value) -> None:
    (a,) = out._prev
    k = out._arg
    a.grad += k * (a.data ** (k - 1)) * out.grad


def _tanh_backward(out: Value) -> None:
    out._prev[0].grad += (1 - out.data**2) * out.grad


def _relu_backward(out: Value) -> None:
    if out.data > 0.0:
        out._prev[0].grad += out.grad


def _sigmoid_backward(out: Value) -> None:
    s = out.data
    out._prev[0].grad += s * (1.0 - s) * out.grad


def _exp_backward(out: Value) -> None:
    out._prev[0].grad += out.data * out.grad


def _log_backward(out: Value) -> None:
    a = out._prev[0]
    a.grad += out.grad / a.data


# -- Neuron / Layer / MLP, as in the second article ----------------------------------

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


class Module:
    """Base class: something with parameters whose gradients can be zeroed."""

    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """One neuron: activation(w . x + b), weights drawn uniformly from [-1, 1]."""

    def __init__(
        self,
        nin: int,
        activation: str = "tanh",
        bias: bool = True,
        rng: random.Random | None = None,
        seed: int | None = None,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if not isinstance(nin, int) or isinstance(nin, bool) or nin < 1:
            raise ValueError(f"nin must be a positive int, got {nin!r}")
        rng = rng or random.Random(seed)
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(rng.uniform(-1, 1)) if bias else None
        self.activation = activation

    def __call__(self, x: Sequence[Value | Number]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"Neuron expects {len(self.w)} inputs, got {len(x)}")
        pairs = zip(self.w, x)
        if self.b is None:
            w0, x0 = next(pairs)
            act = sum((wi * xi for wi, xi in pairs), w0 * x0)
        else:
            act = sum((wi * xi for wi, xi in pairs), self.b)
        if self.activation == "linear":
            return act
        return getattr(act, self.activation)()

    def parameters(self) -> list[Value]:
        return self.w + ([self.b] if self.b is not None else [])

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)}, activation={self.activation!r})"


class Layer(Module):
    """nout neurons reading the same inputs."""

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: str = "tanh",
        rng: random.Random | None = None,
        seed: int | None = None,
    ) -> None:
        rng = rng or random.Random(seed)
        self.neurons = [Neuron(nin, activation, rng=rng) for _ in range(nout)]

    def __call__(self, x: Sequence[Value | Number]) -> Value | list[Value]:
        outs = [n(x) for n in self.neurons]
        return outs[0] if len(outs) == 1 else outs

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer([{', '.join(map(repr, self.neurons))}])"


class MLP(Module):
    """Layers of sizes nin -> nouts[0] -> ... -> nouts[-1], seeded for reproducibility."""

    def __init__(
        self,
        nin: int,
        nouts: Iterable[int],
        activation: str = "tanh",
        output_activation: str | None = None,
        seed: int | None = 0,
    ) -> None:
        sizes = [nin, *nouts]
        if len(sizes) < 2:
            raise ValueError("MLP needs at least one layer size in nouts")
        rng = random.Random(seed)
        last = activation if output_activation is None else output_activation
        self.layers = [
            Layer(sizes[i], sizes[i + 1], activation if i < len(sizes) - 2 else last, rng=rng)
            for i in range(len(sizes) - 1)
        ]
        # Name every parameter so the computation graph reads like the network.
        for li, layer in enumerate(self.layers):
            for ni, neuron in enumerate(layer.neurons):
                for wi, w in enumerate(neuron.w):
                    w.label = f"L{li}.N{ni}.w{wi}"
                if neuron.b is not None:
                    neuron.b.label = f"L{li}.N{ni}.b"

    def __call__(self, x: Sequence[Value | Number]) -> Value | list[Value]:
        for layer in self.layers:
            # A one-neuron layer returns a bare Value (as in the article); re-wrap it.
            x = layer([x] if type(x) is Value else x)
        return x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(map(repr, self.layers))}]"
