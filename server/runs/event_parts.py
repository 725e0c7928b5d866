"""The pieces event data is made of (a graph node, a layer's histogram, a unit's map, ...):
events.py declares each event type's data from these; docs/events.md names their fields."""

from __future__ import annotations

from typing import Literal, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

# Non-finite floats travel as these strings (engine.jsonsafe.json_float).
JsonFloat = float | Literal["nan", "inf", "-inf"]
STRICT = ConfigDict(extra="forbid", strict=True)


@with_config(STRICT)
class Summary(TypedDict):
    """A tensor's mean, std, min, max, and its values when it has at most 64."""

    mean: JsonFloat | None
    std: JsonFloat | None
    min: JsonFloat | None
    max: JsonFloat | None
    values: NotRequired[list[JsonFloat]]


NodeValue = JsonFloat | Summary | None


@with_config(STRICT)
class GraphNode(TypedDict):
    """A node of the graph: scalar nodes carry floats, tensor nodes summaries and a shape."""

    id: int
    label: str
    op: str
    group: str
    record: str
    data: NodeValue
    grad: NodeValue
    shape: NotRequired[list[int]]
    dtype: NotRequired[str]
    requires_grad: NotRequired[bool]


@with_config(STRICT)
class GraphGroup(TypedDict):
    """One layer of the graph (or the loss): its node ids and its parameters' node ids."""

    name: str
    nodes: list[int]
    params: list[int]


@with_config(STRICT)
class ParamStructure(TypedDict):
    """Where a parameter sits: layer, unit and input (None for a whole matrix), and kind."""

    layer: int
    unit: int | None
    input: int | None
    kind: Literal["weight", "bias"]


@with_config(STRICT)
class HistogramLayer(TypedDict):
    """One parameter's histogram over fixed edges, its norm and a fixed sample of values."""

    edges: list[JsonFloat]
    counts: list[int]
    norm: JsonFloat
    sample: list[JsonFloat]


@with_config(STRICT)
class NeuronLayer(TypedDict):
    """One layer's units as images: `shown` (unit indices; all of them unless the layer is
    wider than 16) with their maps, each 0..255 base64 bytes, 127.5 = output 0, 0 and 255 =
    -scale and +scale (the unit's largest |output| over the grid); and the weights into the
    units shown from the previous layer's units shown (the inputs, for the first)."""

    units: int
    shown: list[int]
    scale: list[JsonFloat]
    images: list[str]
    weights: list[list[JsonFloat]]  # [shown unit][previous layer's shown unit (or input)]


@with_config(STRICT)
class FeatureLayer(TypedDict):
    """One conv or pool layer's output for the digit: a base64 uint8 image per channel (the
    first 32), each scaled from its own low (0) to high (255)."""

    name: str
    shape: list[int]
    low: list[JsonFloat]
    high: list[JsonFloat]
    images: list[str]


@with_config(STRICT)
class MisclassifiedItem(TypedDict):
    """One wrong test prediction: the test row, the true label, the guess, its probability."""

    index: int
    label: int
    pred: int
    confidence: float
