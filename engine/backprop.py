"""Backprop one node at a time: the second article's walk through a scalar graph, replayable.

- `rebuild` turns a recorded graph (engine.graph.to_dict's nodes and edges) back into
  `Value`s: leaves from their data, every op recomputed from its operands by the engine's
  own op, so the forward pass really runs (in topological order) and fills the data in.
- `BackwardStepper` runs the real backward pass one node at a time: each node's
  `_backward()` in reverse topological order, undoable. When the k-th node's turn comes,
  every node that consumes it has passed its gradient down, so its grad is final: after k
  steps exactly the first k nodes of the reverse order have known grads.
- `trace` records that walk for the browser to replay: per node its grad and the chain
  rule's terms (for each consumer: upstream grad x local derivative = contribution, with
  the op's rule as text), both measured by calling the consumer's own `_backward`.
- `nudge` is the article's rise over run: (L(x + h) - L(x - h)) / 2h for any node x,
  re-evaluating only what lies above x.
- `article_expression` / `article_neuron` are the article's two hand-worked examples.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from gradscope.engine.autograd import topological_order
from gradscope.engine.jsonsafe import json_float
from gradscope.engine.scalar import Value

TIMES, MINUS = "\u00d7", "\u2212"  # the rules' x and -, as the article typesets them
NUDGE_H = 1e-4  # central differences: error ~h^2, far below the 1e-4 the check shows

_OPS: dict[str, Callable[..., Value]] = {
    "+": operator.add,
    "*": operator.mul,
    "tanh": Value.tanh,
    "relu": Value.relu,
    "sigmoid": Value.sigmoid,
    "exp": Value.exp,
    "log": Value.log,
}


def _op(op: str) -> Callable[..., Value]:
    """The engine op a node's op label names ("**2" is the power 2)."""
    if op.startswith("**"):
        k = float(op[2:])
        power = int(k) if k.is_integer() and "." not in op[2:] else k
        return lambda a: a**power
    if op not in _OPS:
        raise ValueError(f"unknown op {op!r}: not a scalar engine op")
    return _OPS[op]


def operands(n: int, edges: Sequence[Sequence[int]]) -> list[list[int]]:
    """Each node's operands in call order (to_dict lists a node's edges in that order)."""
    prev: list[list[int]] = [[] for _ in range(n)]
    for c, p in edges:
        prev[p].append(c)
    return prev


def rebuild(nodes: Sequence[dict[str, Any]], edges: Sequence[Sequence[int]]) -> list[Value]:
    """A recorded scalar graph as Values (node ids in topological order), forward re-run.

    Leaves take their recorded data; every op node is computed again from its operands.
    """
    prev = operands(len(nodes), edges)
    out: list[Value] = []
    for i, n in enumerate(nodes):
        if n["id"] != i:
            raise ValueError("node ids must be 0..n-1 in topological order")
        if any(c >= i for c in prev[i]):
            raise ValueError(f"node {i} reads a node that comes after it")
        if n["op"]:
            v = _op(n["op"])(*(out[c] for c in prev[i]))
        else:
            data = n["data"]
            if isinstance(data, bool) or not isinstance(data, int | float):
                raise ValueError(f"leaf {i} ({n['label'] or 'constant'}) has no finite data")
            v = Value(data)
        v.label = n["label"]
        out.append(v)
    return out


class BackwardStepper:
    """The real backward pass over root's graph, one node's `_backward()` per step, undoable."""

    def __init__(self, root: Value) -> None:
        self.topo = topological_order(root)
        self.order = self.topo[::-1]  # reverse topological order: the root first
        for v in self.topo:
            v.grad = 0.0
        self.k = 0
        self._undo: list[list[tuple[Value, float]]] = []

    @property
    def done(self) -> bool:
        """Has every node had its turn?"""
        return self.k == len(self.order)

    def step(self) -> Value:
        """Seed the root (first step) and run the next node's backward; returns that node."""
        v = self.order[self.k]
        self._undo.append([(v, v.grad), *((c, c.grad) for c in v._prev)])
        if self.k == 0:
            v.grad = 1.0
        v._backward(v)
        self.k += 1
        return v

    def back(self) -> None:
        """Undo the last step: every grad it touched goes back to what it was."""
        for v, g in reversed(self._undo.pop()):
            v.grad = g
        self.k -= 1

    def known(self) -> list[float | None]:
        """Per node (topological order): its grad once its turn came, else None."""
        stepped = set(map(id, self.order[: self.k]))
        return [v.grad if id(v) in stepped else None for v in self.topo]


_PLAIN = re.compile(r"[\w.]+")


def name(v: Value, i: int) -> str:
    """How the inspector names a node: its label (in brackets when it is an expression like
    "x1*w1", so "(x1*w1).grad" reads right), else its id."""
    if not v.label:
        return f"#{i}"
    return v.label if _PLAIN.fullmatch(v.label) else f"({v.label})"


def _local_rule(op: str, pos: int, kids: Sequence[str], out: str) -> str:
    """The local derivative d out / d operand `pos` as the article writes it."""
    if op == "+":
        return "1"
    if op == "*":
        return f"{kids[1 - pos]}.data"
    if op.startswith("**"):
        k = op[2:]
        return f"{k} {TIMES} {kids[0]}.data^({k} {MINUS} 1)"
    return {
        "tanh": f"(1 {MINUS} {out}.data²)",
        "relu": f"({out}.data > 0)",
        "sigmoid": f"{out}.data {TIMES} (1 {MINUS} {out}.data)",
        "exp": f"{out}.data",
        "log": f"1 / {kids[0]}.data",
    }[op]


def _measure(v: Value, kids: list[Value]) -> tuple[list[float], list[float]]:
    """What v's own `_backward` adds to each distinct operand: with v's grad (the
    contribution) and with 1 (the local derivative); every grad is left as it was."""
    saved, g = [c.grad for c in kids], v.grad
    found = []
    for seed in (g, 1.0):
        v.grad = seed
        for c in kids:
            c.grad = 0.0
        v._backward(v)
        found.append([c.grad for c in kids])
    v.grad = g
    for c, s in zip(kids, saved):
        c.grad = s
    return found[0], found[1]


def trace(values: list[Value]) -> dict[str, Any]:
    """The forward and backward walk over a graph (values in topological order, root last):
    data per node, then per backward step the node, its final grad and its chain-rule terms."""
    ids = {id(v): i for i, v in enumerate(values)}
    names = [name(v, i) for i, v in enumerate(values)]
    stepper = BackwardStepper(values[-1])
    if [ids.get(id(v)) for v in stepper.topo] != list(range(len(values))):
        raise ValueError("values are not the root's graph in topological order")
    terms: list[list[dict[str, Any]]] = [[] for _ in values]
    steps = []
    while not stepper.done:
        v = stepper.order[stepper.k]
        i = ids[id(v)]
        if stepper.k == 0:
            v.grad = 1.0  # the seed the step is about to set, so the measures use it
        steps.append({"node": i, "grad": json_float(v.grad), "terms": terms[i]})
        kids = list(dict.fromkeys(v._prev))
        contributions, locals_ = _measure(v, kids)
        kid_names = [names[ids[id(c)]] for c in v._prev]
        for c, contribution, local in zip(kids, contributions, locals_):
            cid = ids[id(c)]
            rule = " + ".join(
                _local_rule(v.op, pos, kid_names, names[i])
                for pos, p in enumerate(v._prev)
                if p is c
            )
            terms[cid].append(
                {
                    "consumer": i,
                    "upstream": json_float(v.grad),
                    "local": json_float(local),
                    "contribution": json_float(contribution),
                    "rule": f"{names[cid]}.grad += {names[i]}.grad {TIMES} {rule}",
                    "local_rule": rule,
                }
            )
        stepper.step()
    return {
        "root": len(values) - 1,
        "names": names,
        "ops": [v.op for v in values],
        "forward": list(range(len(values))),
        "data": [json_float(v.data) for v in values],
        "backward": steps,
        "grad": [json_float(v.grad) for v in values],
    }


AGREE = 1e-4  # the nudge agrees with the grad within this (relative above 1)


def nudge(values: list[Value], x: int, h: float = NUDGE_H) -> dict[str, Any]:
    """The article's check: the root's change when node x moves by +-h, over 2h, beside x's
    grad (values after a backward pass, e.g. `trace`'s).

    Only nodes above x are recomputed (by the engine's ops); None where an op fails there.
    """
    grad = values[x].grad
    fails = {"node": x, "h": h, "plus": None, "minus": None, "slope": None}
    fails.update(grad=json_float(grad), agree=False)
    ids = {id(v): i for i, v in enumerate(values)}
    prev = [[ids[id(c)] for c in v._prev] for v in values]
    above = {x}
    for j in range(x + 1, len(values)):
        if any(c in above for c in prev[j]):
            above.add(j)
    ends = []
    for sign in (1.0, -1.0):
        data = [v.data for v in values]
        data[x] += sign * h
        try:
            for j in sorted(above - {x}):
                data[j] = _op(values[j].op)(*(Value(data[c]) for c in prev[j])).data
        except (ArithmeticError, ValueError):
            return fails
        ends.append(data[-1])
    slope = (ends[0] - ends[1]) / (2 * h)
    return {
        "node": x,
        "h": h,
        "plus": json_float(ends[0]),
        "minus": json_float(ends[1]),
        "slope": json_float(slope) if math.isfinite(slope) else None,
        "grad": json_float(grad),
        "agree": abs(slope - grad) <= AGREE * max(1.0, abs(grad)),
    }


# -- the article's two hand-worked examples -----------------------------------------------


def article_expression(leaves: Sequence[Value] | None = None) -> tuple[list[Value], Value]:
    """L = (a*b + c) * f, with a=2, b=-3, c=10, f=-2 unless given leaves a, b, c, f."""
    a, b, c, f = leaves or (
        Value(2.0, label="a"),
        Value(-3.0, label="b"),
        Value(10.0, label="c"),
        Value(-2.0, label="f"),
    )
    e = _named(a * b, "e")
    d = _named(e + c, "d")
    return [a, b, c, f], _named(d * f, "L")


def article_neuron(leaves: Sequence[Value] | None = None) -> tuple[list[Value], Value]:
    """o = tanh(x1*w1 + x2*w2 + b), with x1=2, w1=-3, x2=0, w2=1, b=6 (n = 0, o = 0) unless
    given leaves x1, w1, x2, w2, b."""
    x1, w1, x2, w2, b = leaves or (
        Value(2.0, label="x1"),
        Value(-3.0, label="w1"),
        Value(0.0, label="x2"),
        Value(1.0, label="w2"),
        Value(6.0, label="b"),
    )
    x1w1 = _named(x1 * w1, "x1*w1")
    x2w2 = _named(x2 * w2, "x2*w2")
    n = _named(_named(x1w1 + x2w2, "x1*w1 + x2*w2") + b, "n")
    return [x1, w1, x2, w2, b], _named(n.tanh(), "o")


ARTICLES = {"micrograd-expression": article_expression, "micrograd-neuron": article_neuron}


def _named(v: Value, label: str) -> Value:
    v.label = label
    return v
