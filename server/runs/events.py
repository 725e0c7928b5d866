"""Every event a run records, declared once as code (the websocket messages that carry them
are in messages.py, the pieces their data is made of in event_parts.py).

Each event's `data` is a TypedDict: building one is building a plain dict (the training
loop pays nothing for it), a type checker checks the fields, and pydantic validates it
against the same declaration (`validate_event`, used by the tests; docs/events.md is
tested against this module). How events are encoded on disk is the store's business
(server/store/encoding.py): the loop hands it these plain events.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, NotRequired, get_args

from pydantic import TypeAdapter, with_config
from typing_extensions import TypedDict

# The parts (event_parts.py); JsonFloat, STRICT and ParamStructure are imported from here too.
from gradscope.server.runs.event_parts import STRICT as STRICT
from gradscope.server.runs.event_parts import (
    FeatureLayer,
    GraphGroup,
    GraphNode,
    HistogramLayer,
    MisclassifiedItem,
    NeuronLayer,
    NodeValue,
)
from gradscope.server.runs.event_parts import JsonFloat as JsonFloat
from gradscope.server.runs.event_parts import ParamStructure as ParamStructure

RunState = Literal[
    "queued", "running", "paused", "finished", "stopped", "failed", "crashed", "interrupted"
]
RUN_STATES: tuple[str, ...] = get_args(RunState)
EventType = Literal[
    "state",
    "metrics",
    "dataset",
    "graph",
    "graph_values",
    "weights",
    "histograms",
    "health",
    "boundary",
    "confusion",
    "first_layer",
    "misclassified",
    "checkpoint",
    "download",
    "intervention",
    "neurons",
    "feature_maps",
]
# The snapshot kinds, each a picture of one moment (GET /api/runs/{id}/snapshots/{kind}).
NOT_SNAPSHOTS = ("state", "metrics", "checkpoint", "download", "intervention")  # moments
SNAPSHOT_TYPES = tuple(t for t in get_args(EventType) if t not in NOT_SNAPSHOTS)
# The kinds recorded every k steps: a step with one of them is a frame (Store.frame).
FRAME_TYPES: tuple[str, ...] = (
    "weights", "histograms", "health", "graph_values", "boundary", "neurons", "feature_maps"
)  # fmt: skip
# A per-step metrics event as the loop buffers it, (step, t, epoch, train_loss): the one
# event every step makes stays a tuple until the store encodes it (see StepMetrics).
StepLoss = tuple[int, float, int, float]


# -- event data, one TypedDict per type -----------------------------------------------------


@with_config(STRICT)
class StateData(TypedDict):
    """The run's state changed (`op`: the op that made NaN/Inf, for a failed run)."""

    state: RunState
    message: NotRequired[str]
    op: NotRequired[str]


@with_config(STRICT)
class StepMetrics(TypedDict):
    """One optimizer step's training loss (a metrics event, every step)."""

    epoch: int
    train_loss: JsonFloat


@with_config(STRICT)
class EpochMetrics(TypedDict):
    """Test figures at an epoch end (a metrics event; accuracies for classification only)."""

    epoch: int
    test_loss: JsonFloat
    test_acc: NotRequired[float]
    train_acc: NotRequired[float]


@with_config(STRICT)
class DatasetData(TypedDict):
    """A 2-D data set: up to 1000 points [x, y, label] and [xmin, xmax, ymin, ymax]; `test`
    the test points alike, `classes` their number (None: a regression, label is the target)."""

    points: list[list[float]]
    bounds: list[float]
    test: NotRequired[list[list[float]]]
    classes: NotRequired[int | None]


@with_config(STRICT)
class GraphData(TypedDict):
    """One step's computation graph (engine.graph.to_dict) with its DOT source."""

    kind: Literal["scalar", "tensor"]
    root: int
    nodes: list[GraphNode]
    edges: list[list[int]]
    groups: list[GraphGroup]
    dot: str
    scope: Literal["step", "sample 0"]


@with_config(STRICT)
class GraphValuesData(TypedDict):
    """Every graph node's data and grad, in the order of the graph event's nodes."""

    data: list[NodeValue]
    grad: list[NodeValue]


@with_config(STRICT)
class WeightsData(TypedDict):
    """Every parameter's values (models of at most 1,000 parameters)."""

    params: dict[str, list[JsonFloat]]
    shapes: dict[str, list[int]]
    structure: dict[str, ParamStructure]


@with_config(STRICT)
class HistogramsData(TypedDict):
    """Per-parameter histograms (models of more than 1,000 parameters)."""

    layers: dict[str, HistogramLayer]
    structure: dict[str, ParamStructure]


@with_config(STRICT)
class HealthData(TypedDict):
    """Gradient norms and update ratios per parameter group, dead-ReLU shares per module."""

    grad_norm: dict[str, JsonFloat]
    update_ratio: dict[str, JsonFloat | None]  # None: the update before it was not watched
    dead_relu: dict[str, JsonFloat]


@with_config(STRICT)
class BoundaryData(TypedDict):
    """P(class 1) on an n x n grid over the 2-D data (row-major, y outer); `kind` "classes"
    (more than two): `classes` the predicted class per cell, `values` its probability;
    `kind` "value" (a regression): `values` the prediction, `range` the targets' [min, max]."""

    grid: int
    bounds: list[float]
    values: list[JsonFloat]
    kind: NotRequired[Literal["probability", "classes", "value"]]
    classes: NotRequired[list[int]]
    range: NotRequired[list[float]]


@with_config(STRICT)
class NeuronsData(TypedDict):
    """Every unit's output over the input plane (2-D data sets): the grid's side, its bounds
    [xmin, xmax, ymin, ymax], and a NeuronLayer per layer (the hidden ones, then the output)."""

    grid: int
    bounds: list[float]
    layers: list[NeuronLayer]


@with_config(STRICT)
class ConfusionData(TypedDict):
    """The latest epoch-end test pass: matrix[true][predicted] counts."""

    labels: list[int]
    matrix: list[list[int]]


@with_config(STRICT)
class FirstLayerData(TypedDict):
    """The weights into the first first-layer units as base64 uint8 images (MNIST)."""

    shape: list[int]
    units: list[int]
    scale: list[JsonFloat]
    images: list[str]


@with_config(STRICT)
class FeatureMapsData(TypedDict):
    """A CNN run's feature maps of one fixed test digit (row `index`, a `label`; `image`
    its 28x28 base64 uint8 ink), through every conv and pool layer, at this frame."""

    index: int
    label: int
    image: str
    layers: list[FeatureLayer]


@with_config(STRICT)
class MisclassifiedData(TypedDict):
    """The test digits the model gets wrong with the most confidence, with their images."""

    shape: list[int]
    total: int
    items: list[MisclassifiedItem]
    images: list[str]


@with_config(STRICT)
class CheckpointData(TypedDict):
    """A checkpoint file was written (in the data dir's checkpoints/<run id>/)."""

    file: str


@with_config(STRICT)
class DownloadData(TypedDict):
    """A data file is being downloaded before training starts (MNIST, when missing):
    `done` of `total` bytes (`total` 0 when the server does not say; done = total at the end)."""

    file: str
    done: int
    total: int


@with_config(STRICT)
class InterventionData(TypedDict):
    """A person changed the run while it was paused: one weight set by hand (`param` as the
    weights event names it, `index` into it, [] for a scalar), from `old` to `new`; or a
    training point added or dragged (what "point", param "point", index [row]): `point` is
    [x1, x2, label], `moved_from` its place before a drag, old/new its label before/after."""

    what: Literal["weight", "point"]
    param: str
    index: list[int]
    old: float
    new: float
    point: NotRequired[list[float]]
    moved_from: NotRequired[list[float] | None]


EventData = (
    StateData
    | StepMetrics
    | EpochMetrics
    | DatasetData
    | GraphData
    | GraphValuesData
    | WeightsData
    | HistogramsData
    | HealthData
    | BoundaryData
    | ConfusionData
    | FirstLayerData
    | MisclassifiedData
    | CheckpointData
    | DownloadData
    | InterventionData
    | NeuronsData
    | FeatureMapsData
)

# Each event type and the data it carries.
EVENT_DATA: dict[str, tuple[type, ...]] = {
    "state": (StateData,),
    "metrics": (StepMetrics, EpochMetrics),
    "dataset": (DatasetData,),
    "graph": (GraphData,),
    "graph_values": (GraphValuesData,),
    "weights": (WeightsData,),
    "histograms": (HistogramsData,),
    "health": (HealthData,),
    "boundary": (BoundaryData,),
    "confusion": (ConfusionData,),
    "first_layer": (FirstLayerData,),
    "misclassified": (MisclassifiedData,),
    "checkpoint": (CheckpointData,),
    "download": (DownloadData,),
    "intervention": (InterventionData,),
    "neurons": (NeuronsData,),
    "feature_maps": (FeatureMapsData,),
}


# -- the envelope -----------------------------------------------------------------------------


class NewEvent(TypedDict):
    """An event as the loop hands it to the store (which assigns seq, and t if missing)."""

    type: EventType
    step: int
    data: EventData
    t: NotRequired[float]


@with_config(STRICT)
class Event(TypedDict):
    """A recorded event, as the store returns it, REST serves it and the websocket sends it."""

    seq: int
    type: EventType
    step: int
    t: float
    data: dict[str, Any]


# What the loop hands the store: events, and steps' metrics as StepLoss tuples.
Pending = NewEvent | StepLoss


def new_event(kind: EventType, step: int, data: EventData) -> NewEvent:
    """An event to record: its type, the steps done when it was made, and its data."""
    return {"type": kind, "step": step, "data": data}


@functools.cache
def adapter(kind: type) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def validate_event(event: dict[str, Any]) -> None:
    """Raise ValueError unless the event (envelope and data) matches its declaration."""
    adapter(Event).validate_python(event)
    errors = []
    for kind in EVENT_DATA[event["type"]]:
        try:
            adapter(kind).validate_python(event["data"])
            return
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            errors.append(str(e))
    raise ValueError(f"{event['type']} event at seq {event['seq']}: " + "\n".join(errors))
