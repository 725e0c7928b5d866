"""The computation graph as data: JSON for the dashboard, DOT for the article's picture.

Works for both engines. A scalar `Value` node carries its data and grad; a `Tensor` node
its shape, dtype and summaries (mean, std, min, max), plus the values themselves when it
holds at most 64 elements, so tiny nets show real numbers like the articles do. The
browser renders the DOT (no graphviz Python dependency). Node ids are numbered in
topological order, so the same expression gives the same ids and the same picture.

Every node also names the layer it belongs to (`group`), and the graph lists its groups,
so the dashboard can collapse a big graph to one box per layer: see `groups`. Each node
carries its DOT record label (`record`), so the browser never re-formats one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradscope.engine.autograd import topological_order
from gradscope.engine.jsonsafe import json_float
from gradscope.engine.scalar import Value
from gradscope.engine.tensor import Tensor

MAX_VALUES = 64  # tensors up to this size carry every value, not just summaries

Node = Value | Tensor


def summarize(a: np.ndarray | None) -> dict[str, Any] | None:
    """mean, std, min, max of an array (and its values when small), JSON-safe.

    Small arrays are summarised in plain Python (numpy's per-call overhead dominates
    there), large ones in four passes (std from sum and dot, in float64: plenty for a
    display); a recorded graph summarises every node every few steps.
    """
    if a is None:
        return None
    if a.size <= MAX_VALUES:
        vals = a.ravel().tolist()
        if not vals or not all(map(math.isfinite, vals)):
            return _summarize_any(a)
        n = len(vals)
        mean = math.fsum(vals) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / n)
        return {
            "mean": mean + 0.0,
            "std": std,
            "min": min(vals) + 0.0,
            "max": max(vals) + 0.0,
            "values": [v + 0.0 for v in vals],  # + 0.0: no -0.0
        }
    x = a.ravel(order="K")
    with np.errstate(all="ignore"):
        n = x.size
        mean = float(np.add.reduce(x, dtype=np.float64)) / n
        var = float(np.dot(x, x)) / n - mean * mean
        std = math.sqrt(var) if var > 0 else (0.0 if var >= 0 else math.nan)
        lo, hi = float(np.min(x)), float(np.max(x))
    return {k: json_float(v) for k, v in (("mean", mean), ("std", std), ("min", lo), ("max", hi))}


def _summarize_any(a: np.ndarray) -> dict[str, Any]:
    """summarize for small arrays that are empty or hold NaN/Inf (numpy's own reductions)."""
    out: dict[str, Any] = {"mean": None, "std": None, "min": None, "max": None}
    if a.size:
        with np.errstate(all="ignore"):  # summaries of inf/nan arrays are themselves nan
            out = {
                k: json_float(f(a))
                for k, f in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))
            }
    out["values"] = [json_float(x) for x in np.ravel(a)]
    return out


def _node_dict(i: int, v: Node, group: str) -> dict[str, Any]:
    if isinstance(v, Value):
        return {
            "id": i,
            "label": v.label,
            "op": v.op,
            "group": group,
            "record": _record(v),
            "data": json_float(v.data),
            "grad": json_float(v.grad),
        }
    return {
        "id": i,
        "label": v.label,
        "op": v.op,
        "group": group,
        "shape": list(v.shape),
        "dtype": str(v.dtype),
        "requires_grad": v.requires_grad,
        "record": _record(v),
        "data": summarize(v.data),
        "grad": summarize(v.grad),
    }


# -- layers ------------------------------------------------------------------------------
# A layer computes in a fixed pattern from its parameters: a product with a weight (w * x,
# x @ W, or the fused linear), sums adding such products to a bias or to each other, then
# one activation. Nodes matching that pattern belong to the parameters' layer; whatever is
# computed from the layers' outputs in any other way is the loss; inputs and constants join
# the node that reads them. Which layer a parameter is in comes from the model, as data
# (`param_groups`); without it, from the name the model gave the parameter ("L1.N0.w2" for
# the scalar MLP, "2.weight" for the tensor one).

# conv2d and batch_norm read their own parameters as the fused linear does.
MUL_OPS = frozenset({"*", "@", "linear", "conv2d", "batch_norm"})
ADD_OPS = frozenset({"+"})
ACTIVATION_OPS = frozenset({"tanh", "relu", "sigmoid"})
# Ops without parameters that reshape or subsample a layer's output: they join its layer.
PASS_OPS = frozenset({"max_pool2d", "avg_pool2d", "dropout", "flatten"})
LOSS_GROUP = "loss"
MODEL_GROUP = "model"  # parameters whose names carry no layer (the napkin's w0..w3)

ParamGroups = Mapping[Node, str]


def _is_param(v: Node) -> bool:
    if v.op:
        return False
    return v.requires_grad if isinstance(v, Tensor) else bool(v.label)


def _param_group(label: str) -> str:
    """The layer in a parameter's name: "L1.N0.w2" -> "L1", "2.weight" -> "2"."""
    return label.split(".", 1)[0] if "." in label else MODEL_GROUP


def groups(topo: list[Node], param_groups: ParamGroups | None = None) -> list[str]:
    """The layer of each node of a topological order (children first), as a name.

    param_groups maps each parameter to its layer's name; without it, parameters are the
    named leaves and their layer is read from the name.
    """
    ids = {v: i for i, v in enumerate(topo)}
    group: list[str | None] = [None] * len(topo)
    kind: list[str] = [""] * len(topo)  # "param", "mul", "add", "act" inside a layer
    after = [False] * len(topo)  # computed from some parameter
    for i, v in enumerate(topo):
        kids = [ids[c] for c in v._prev]
        if param_groups is not None:
            param = param_groups.get(v)
        else:
            param = _param_group(v.label) if _is_param(v) else None
        after[i] = param is not None or any(after[k] for k in kids)
        if param is not None:
            group[i], kind[i] = param, "param"
        elif v.op in MUL_OPS:
            g = next((group[k] for k in kids if kind[k] == "param"), None)
            if g is not None:
                group[i], kind[i] = g, "mul"
        elif v.op in ADD_OPS and len(kids) == 2:
            # bias + w*x, or partial sum + w*x: a product of the layer and the layer's own
            # bias or sum. (loss - target) has no such product and stays out.
            for a, b in (kids, kids[::-1]):
                if kind[a] == "mul" and kind[b] in ("param", "mul", "add") and group[b] == group[a]:
                    group[i], kind[i] = group[a], "add"
                    break
        elif v.op in ACTIVATION_OPS and len(kids) == 1 and kind[kids[0]] in ("mul", "add"):
            group[i], kind[i] = group[kids[0]], "act"
        elif v.op in PASS_OPS and len(kids) == 1 and kind[kids[0]] in ("mul", "add", "act", "pass"):
            group[i], kind[i] = group[kids[0]], "pass"
        if group[i] is None and v.op and after[i]:
            group[i] = LOSS_GROUP
    # What is left feeds the layers (inputs, constants, their preprocessing): it joins its
    # first reader, so parents go first.
    readers: list[list[int]] = [[] for _ in topo]
    for i, v in enumerate(topo):
        for c in v._prev:
            readers[ids[c]].append(i)
    for i in reversed(range(len(topo))):
        if group[i] is None:
            group[i] = group[min(readers[i])] if readers[i] else LOSS_GROUP
    return [g if g is not None else LOSS_GROUP for g in group]


def group_list(
    topo: list[Node], names: list[str], param_groups: ParamGroups | None = None
) -> list[dict[str, Any]]:
    """[{"name", "nodes", "params"}] per group, in order of first appearance (node ids)."""
    out: dict[str, dict[str, Any]] = {}
    for i, (v, name) in enumerate(zip(topo, names)):
        g = out.setdefault(name, {"name": name, "nodes": [], "params": []})
        g["nodes"].append(i)
        if (v in param_groups) if param_groups is not None else _is_param(v):
            g["params"].append(i)
    return list(out.values())


def to_dict(root: Node, param_groups: ParamGroups | None = None) -> dict[str, Any]:
    """Nodes, edges [child id, parent id] and layer groups under root, JSON-ready.

    param_groups: each parameter's layer name, from the model (see `groups`).
    """
    topo = topological_order(root)
    ids = {v: i for i, v in enumerate(topo)}
    names = groups(topo, param_groups)
    return {
        "kind": "scalar" if isinstance(root, Value) else "tensor",
        "root": ids[root],
        "nodes": [_node_dict(i, v, names[i]) for i, v in enumerate(topo)],
        "edges": [[ids[c], i] for i, v in enumerate(topo) for c in v._prev],
        "groups": group_list(topo, names, param_groups),
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
