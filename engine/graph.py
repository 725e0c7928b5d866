"""The computation graph as data: JSON for the dashboard, DOT for the article's picture.

The browser renders the DOT (no graphviz Python dependency). Node ids are numbered in
topological order, so the same expression gives the same ids and the same picture.
"""

from __future__ import annotations

import math
from typing import Any

from engine.scalar import Value, topological_order


def _number(x: float) -> float | str:
    """A float JSON can carry: non-finite values become the strings nan, inf, -inf."""
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def to_dict(root: Value) -> dict[str, Any]:
    """Nodes (id, label, op, data, grad) and edges [child id, parent id] under root."""
    topo = topological_order(root)
    ids = {v: i for i, v in enumerate(topo)}
    nodes = [
        {"id": i, "label": v.label, "op": v.op, "data": _number(v.data), "grad": _number(v.grad)}
        for i, v in enumerate(topo)
    ]
    edges = [[ids[c], i] for i, v in enumerate(topo) for c in v._prev]
    return {"root": ids[root], "nodes": nodes, "edges": edges}


_RECORD_SPECIAL = str.maketrans({c: "\\" + c for c in '\\{}|<>"'})


def _escape(text: str) -> str:
    """Escape what a DOT record label would read as structure."""
    return text.translate(_RECORD_SPECIAL).replace("\n", "\\n")


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def to_dot(root: Value) -> str:
    """Graphviz source of the article's draw_dot: record boxes label | data | grad, ops apart."""
    topo = topological_order(root)
    ids = {v: f"n{i}" for i, v in enumerate(topo)}
    lines = ["digraph G {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for v in topo:
        nid = ids[v]
        label = f"{{ {_escape(v.label)} | data {_fmt(v.data)} | grad {_fmt(v.grad)} }}"
        lines.append(f'  {nid} [shape=record, label="{label}"];')
        if v.op:
            lines.append(f'  {nid}_op [shape=ellipse, label="{_escape(v.op)}"];')
            lines.append(f"  {nid}_op -> {nid};")
    # x * x has the same child twice; draw_dot keeps a set of edges, so draw it once.
    edges = dict.fromkeys((ids[c], ids[v]) for v in topo for c in v._prev)
    lines.extend(f"  {c} -> {p}_op;" for c, p in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"
