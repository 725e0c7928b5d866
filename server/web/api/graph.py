"""/api/runs/{id}/graph/backprop: a scalar graph's forward and backward pass, node by node.

The graph panel's stepper and chain-rule inspector replay what this route computes, on
demand (nothing is added to a run's recording): the recorded graph at a step is rebuilt
from its leaves' data by the engine (engine.backprop), its forward pass re-run, and its
backward pass run one node's `_backward()` at a time.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gradscope.engine.backprop import nudge, rebuild, trace
from gradscope.server.errors import Invalid, NotFound, Unsupported
from gradscope.server.web.api.deps import SQLITE_MAX_INT, RunDep, StoreDep
from gradscope.server.web.api.models import Problem

router = APIRouter(prefix="/api/runs", tags=["runs"])
ERRORS = {code: {"model": Problem} for code in (404, 415, 422)}
Number = float | str  # engine.jsonsafe: "nan", "inf", "-inf" where a float is not finite


class Term(BaseModel):
    """One consumer's share of a node's grad: upstream grad x local derivative."""

    consumer: int = Field(description="the node that reads this one")
    upstream: Number = Field(description="the consumer's grad")
    local: Number = Field(description="d consumer / d node, from the consumer's _backward")
    contribution: Number = Field(description="what the consumer's _backward added")
    rule: str = Field(
        description='the op\'s rule, e.g. "n.grad += o.grad \u00d7 (1 \u2212 o.data²)"'
    )
    local_rule: str = Field(description='the local derivative as text, e.g. "(1 \u2212 o.data²)"')


class BackwardStep(BaseModel):
    """One step of the backward pass: the node whose grad is now final, and its terms."""

    node: int
    grad: Number
    terms: list[Term]


class Nudge(BaseModel):
    """The article's check: (L(x + h) - L(x - h)) / 2h for node x (null where an op fails)."""

    node: int
    h: float
    plus: Number | None
    minus: Number | None
    slope: Number | None
    grad: Number = Field(description="the node's grad from the backward pass")
    agree: bool = Field(description="slope and grad agree within 1e-4 (relative above 1)")


class Backprop(BaseModel):
    """A scalar graph's walk: forward order and data, backward steps, the final grads."""

    run_id: str
    step: int = Field(description="the step whose graph this is (its leaves' data)")
    root: int
    names: list[str] = Field(description="each node's name in the rules: label, else #id")
    ops: list[str]
    forward: list[int] = Field(description="node ids in the order the forward pass fills data")
    data: list[Number]
    backward: list[BackwardStep] = Field(description="reverse topological order, root first")
    grad: list[Number] = Field(description="every grad at the end: backward()'s")
    nudge: Nudge | None = Field(None, description="for ?node=ID")


class NotScalar(Unsupported):
    """Backprop stepping is for graphs of scalar Values."""


@router.get("/{run_id}/graph/backprop", response_model=Backprop, responses=ERRORS)
def get_backprop(
    run: RunDep,
    store: StoreDep,
    at: Annotated[
        int | None,
        Query(ge=0, le=SQLITE_MAX_INT, description="the graph as of this step (default: latest)"),
    ] = None,
    node: Annotated[
        int | None, Query(ge=0, description="also nudge this node (the inspector's check)")
    ] = None,
) -> dict[str, Any]:
    """The recorded scalar graph at a step, its forward and backward pass node by node."""
    graph = store.latest_event(run.id, "graph", at_step=at)
    if graph is None:
        where = "" if at is None else f" at or before step {at}"
        raise NotFound(f"run {run.id} has no graph{where}")
    g = graph["data"]
    if g["kind"] != "scalar":
        raise NotScalar("backprop stepping is for scalar graphs (this run's is of tensors)")
    nodes = g["nodes"]
    values = store.latest_event(run.id, "graph_values", at_step=at)
    step = graph["step"]
    if values is not None and values["step"] >= step and len(values["data"]["data"]) == len(nodes):
        step = values["step"]
        nodes = [{**n, "data": d} for n, d in zip(nodes, values["data"]["data"])]
    if node is not None and node >= len(nodes):
        raise Invalid(f"node: the graph has {len(nodes)} nodes (ids 0..{len(nodes) - 1})")
    try:
        built = rebuild(nodes, g["edges"])
        out = trace(built)
    except (ArithmeticError, ValueError) as e:
        raise Invalid(f"the graph at step {step} cannot be run again: {e}") from None
    out.update(run_id=run.id, step=step)
    if node is not None:
        out["nudge"] = nudge(built, node)
    return out
