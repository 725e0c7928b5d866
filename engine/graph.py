"""The computation graph as data: JSON for the dashboard, DOT for the article's picture.

Works for both engines. A scalar `Value` node carries its data and grad; a `Tensor` node
its shape, dtype and summaries (mean, std, min, max), plus the values themselves when it
holds at most 64 elements, so tiny nets show real numbers like the articles do. The
browser renders the DOT (no graphviz Python dependency). Node ids are numbered in
topological order, so the same expression gives the same ids and the same picture.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.autograd import topological_order
from engine.scalar import Value
from engine.tensor import Tensor

MAX_VALUES = 64  # tensors up to this size carry every value, not just summaries

Node = Value | Tensor


def _number(x: float) -> float | str:
    """A float JSON can carry: non-finite values become the strings nan, inf, -inf."""
    x = float(x) + 0.0  # + 0.0 turns -0.0 (e.g. from relu's x * mask) into 0.0
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def summarize(a: np.ndarray | None) -> dict[str, Any] | None:
    """mean, std, min, max of an array (and its values when small), JSON-safe."""
    if a is None:
        return None
    out: dict[str, Any] = {"mean": None, "std": None, "min": None, "max": None}
    if a.size:
        with np.errstate(all="ignore"):  # summaries of inf/nan arrays are themselves nan
            out = {
                k: _number(f(a))
                for k, f in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))
            }
    if a.size <= MAX_VALUES:
        out["values"] = [_number(x) for x in np.ravel(a)]
    return out


def _node_dict(i: int, v: Node) -> dict[str, Any]:
    if isinstance(v, Value):
        return {
            "id": i,
            "label": v.label,
            "op": v.op,
            "data": _number(v.data),
            "grad": _number(v.grad),
        }
    return {
        "id": i,
        "label": v.label,
        "op": v.op,
        "shape": list(v.shape),
        "dtype": str(v.dtype),
        "requires_grad": v.requires_grad,
        "data": summarize(v.data),
        "grad": summarize(v.grad),
    }


def to_dict(root: Node) -> dict[str, Any]:
    """Nodes and edges [child id, parent id] under root, JSON-ready (no NaN literals)."""
    topo = topological_order(root)
    ids = {v: i for i, v in enumerate(topo)}
    return {
        "kind": "scalar" if isinstance(root, Value) else "tensor",
        "root": ids[root],
        "nodes": [_node_dict(i, v) for i, v in enumerate(topo)],
        "edges": [[ids[c], i] for i, v in enumerate(topo) for c in v._prev],
    }


_RECORD_SPECIAL = str.maketrans({c: "\\" + c for c in '\\{}|<>"'})


def _escape(text: str) -> str:
    """Escape what a DOT record label would read as structure."""
    return text.translate(_RECORD_SPECIAL).replace("\n", "\\n")


def _fmt(x: float) -> str:
    return f"{float(x) + 0.0:.4f}"  # never "-0.0000"


def _fmt_array(a: np.ndarray | None) -> str:
    if a is None:
        return "none"
    if a.size <= 4:
        return "[" + " ".join(_fmt(x) for x in np.ravel(a)) + "]"
    with np.errstate(all="ignore"):
        return f"mean {_fmt(np.mean(a))} std {_fmt(np.std(a))}"


def _record(v: Node) -> str:
    if isinstance(v, Value):
        return f"{{ {_escape(v.label)} | data {_fmt(v.data)} | grad {_fmt(v.grad)} }}"
    shape = "x".join(map(str, v.shape)) or "scalar"
    return (
        f"{{ {_escape(v.label)} | {shape} {v.dtype} | data {_escape(_fmt_array(v.data))} | "
        f"grad {_escape(_fmt_array(v.grad))} }}"
    )


def to_dot(root: Node) -> str:
    """Graphviz source of the article's draw_dot: record boxes label | data | grad, ops apart."""
    topo = topological_order(root)
    ids = {v: f"n{i}" for i, v in enumerate(topo)}
    lines = ["digraph G {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for v in topo:
        nid = ids[v]
        lines.append(f'  {nid} [shape=record, label="{_record(v)}"];')
        if v.op:
            lines.append(f'  {nid}_op [shape=ellipse, label="{_escape(v.op)}"];')
            lines.append(f"  {nid}_op -> {nid};")
    # x * x has the same child twice; draw_dot keeps a set of edges, so draw it once.
    edges = dict.fromkeys((ids[c], ids[v]) for v in topo for c in v._prev)
    lines.extend(f"  {c} -> {p}_op;" for c, p in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"
