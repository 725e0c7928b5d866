"""Pydantic models for every REST request and response."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from gradscope.server.runs.config import PRESETS, RunConfig, Text
from gradscope.server.runs.events import SNAPSHOT_TYPES

PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]  # an enum in the schema

SnapshotKind = Literal[SNAPSHOT_TYPES]  # type: ignore[valid-type]  # events.py's, an enum


class RunCreate(BaseModel):
    """Start a run from a preset, a config, or a preset with config overrides."""

    model_config = ConfigDict(extra="forbid")
    preset: PresetName | None = Field(None, description="preset name (GET /api/presets)")
    config: dict[str, Any] | None = Field(
        None, description="config fields; with a preset, overrides merged into its config"
    )
    name: Text | None = Field(None, description="a name to show in the run list", max_length=200)


MAX_NAME = 200  # characters of a run's name
MAX_TAGS = 20  # tags a run may have
MAX_TAG = 40  # characters of a tag


def _tag(value: str) -> str:
    if "," in value:
        raise ValueError("a tag cannot hold a comma (the run table's filter splits on them)")
    return value


# A tag: trimmed, 1 to MAX_TAG characters of plain text, no comma.
Tag = Annotated[
    Text,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG),
    AfterValidator(_tag),
]


class MetricSummary(BaseModel):
    """A metric's last value (at `step`) and its best: least for a loss, greatest for accuracy."""

    final: float
    step: int
    best: float


class Run(BaseModel):
    """A run as stored: its config, state and progress."""

    id: str
    name: str
    preset: str | None
    config: dict[str, Any]
    state: str = Field(
        description="queued|running|paused|finished|stopped|failed|crashed|interrupted"
    )
    source: str = Field(description="server (REST) or cli (gradscope train)")
    step: int
    epoch: int
    total_steps: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    error: str | None
    error_op: str | None = Field(description="the op that produced NaN/Inf, when one did")
    traceback: str | None
    pid: int | None
    checkpoint: str | None
    checkpoint_step: int | None
    last_seq: int = Field(description="sequence number of the run's last committed event")
    tags: list[str] = Field(description="labels to filter and group runs by")
    summary: dict[str, MetricSummary] = Field(
        description="final and best train_loss, test_loss, train_acc, test_acc (those recorded)"
    )
    parent_id: str | None = Field(
        None, description="a fork's parent: the run it continues (null: not a fork)"
    )
    fork_step: int | None = Field(
        None, description="a fork's step: its history up to here is its parent's"
    )


class ForkRequest(BaseModel):
    """Start a run from another's state at one of its steps, with changes (a what-if)."""

    model_config = ConfigDict(extra="forbid")
    step: int = Field(
        ge=0,
        le=2**63 - 1,
        strict=True,
        description="the parent's step to continue from: any step it has recorded (0 to its "
        "step), a frame step or not",
    )
    config: dict[str, Any] | None = Field(
        None,
        description="changes to the parent's config, merged into it: optimizer.lr, momentum, "
        "nesterov, weight_decay, betas; steps or epochs; pace; start_paused; record.*; name. "
        "The model, data, batch size, seed, engine and loss stay the parent's",
    )
    name: Text | None = Field(
        None, description="the fork's name (default: the parent's, with the step)", max_length=200
    )


class RunList(BaseModel):
    runs: list[Run]


class StepRequest(BaseModel):
    """Advance a paused run by exactly n steps."""

    model_config = ConfigDict(extra="forbid")
    # The upper bound is the server's GRADSCOPE_MAX_STEP_REQUEST (checked by the route, and
    # put in the schema by docs.with_settings_limits).
    n: int = Field(1, ge=1, description="how many steps")


class RunPatch(BaseModel):
    """Change a run: its name and tags (any time), its pace (live, until it ends).

    Only the fields given change; at least one is needed.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    name: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAME,
        pattern=r"\S",  # not blank
        description="the run's display name",
    )
    tags: list[Tag] | None = Field(
        None,
        max_length=MAX_TAGS,
        description=f"the run's tags (replacing its tags): each 1-{MAX_TAG} characters, no comma",
    )
    pace: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="steps per second; null: as fast as the machine goes",
    )


class Preset(BaseModel):
    name: str
    title: str
    description: str
    featured: bool
    config: RunConfig


class PresetList(BaseModel):
    presets: list[Preset]


class Series(BaseModel):
    step: list[int]
    value: list[float | str]
    seq: list[int]


class Metrics(BaseModel):
    """Metric series of a run (train_loss every step, test_* every epoch)."""

    run_id: str
    since: int
    last_seq: int
    series: dict[str, Series]


class Snapshot(BaseModel):
    """The latest recorded event of one kind at or before a step."""

    run_id: str
    kind: str
    step: int
    seq: int
    t: float
    data: dict[str, Any]


class Problem(BaseModel):
    """An error answer: what went wrong, in words."""

    detail: Any
