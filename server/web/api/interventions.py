"""/api/runs/{id}/interventions: a person edits a paused run (one weight, or one training point
of a 2-D set, at a time), and the edits made so far. Each edit is an `intervention` event;
training continues from it."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gradscope.server.runs.commands import POINT
from gradscope.server.runs.config import ConfigError
from gradscope.server.store import Store
from gradscope.server.web.api.deps import ManagerDep, RunDep, StoreDep
from gradscope.server.web.api.runs import BODY_ERRORS, ERRORS, TIMEOUT

router = APIRouter(prefix="/api/runs", tags=["runs"])
MAX_WEIGHT = 1e6  # a hand-set weight beyond this is a typo, not an experiment


class InterventionRequest(BaseModel):
    """Set one weight (or bias) of a paused run, or add or drag one of its training points."""

    model_config = ConfigDict(extra="forbid")
    what: Literal["weight", "point"] = Field(
        "weight", description="weight: param/index/value; point: row (none: add), x1, x2, label"
    )
    param: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="the parameter as the weights event names it: w0 (napkin), L0.N1.w2 "
        "(scalar MLP), 0.weight (tensor MLP)",
    )
    index: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list,
        max_length=8,
        description="the element: [] for a scalar parameter, [out, in] for a weight matrix",
    )
    value: float | None = Field(
        None, description=f"the new value, finite, at most {MAX_WEIGHT:g} in size"
    )
    row: Annotated[int, Field(ge=0)] | None = Field(
        None, description="point: the training row to drag; none adds a point"
    )
    x1: float | None = Field(None, description="point: where it goes, finite")
    x2: float | None = Field(None, description="point: where it goes, finite")
    label: float | None = Field(
        None, description="point: its class (0, 1, ...) or, for a regression, its target"
    )

    @field_validator("value", "x1", "x2", "label")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or abs(v) > MAX_WEIGHT):
            raise ValueError(f"must be a finite number of size at most {MAX_WEIGHT:g}")
        return v

    @model_validator(mode="after")
    def _complete(self) -> InterventionRequest:
        needed = ("param", "value") if self.what == "weight" else ("x1", "x2", "label")
        for name in needed:
            if getattr(self, name) is None:
                raise ConfigError(name, f"a {self.what} edit needs {' and '.join(needed)}")
        return self


class Intervention(BaseModel):
    """One edit, as recorded."""

    step: int = Field(description="the step the run was paused at")
    what: str = Field(description="what was edited: weight or point")
    param: str = Field(description="the parameter; 'point' for a point")
    index: list[int] = Field(description="the element; [row] for a point")
    old: float = Field(description="the value before (a point: its label before)")
    new: float = Field(description="the value after (a point: its label)")
    point: list[float] | None = Field(None, description="point: [x1, x2, label]")
    moved_from: list[float] | None = Field(None, description="point: [x1, x2] before a drag")


class InterventionList(BaseModel):
    interventions: list[Intervention]


@router.post(
    "/{run_id}/interventions",
    status_code=201,
    response_model=Intervention,
    response_model_exclude_none=True,
    responses={**BODY_ERRORS, **TIMEOUT},
)
async def intervene(
    run: RunDep, body: InterventionRequest, manager: ManagerDep, store: StoreDep
) -> Intervention:
    """Set one weight of a paused run (409 if it is not paused; 422 naming `param` or `index`
    when the model has no such weight), or add (no `row`) or drag (`row`) a training point of
    a 2-D run (422 naming `row` or `label`). The edit is recorded as an `intervention` event
    (a point's also re-sends the `dataset` event), the step's frame is recorded again, and
    training continues from the edited state."""
    if body.what == "point":
        index = [] if body.row is None else [body.row]
        step = await manager.intervene(run.id, POINT, index, [body.x1, body.x2, body.label])  # type: ignore[arg-type]
        param = POINT
    else:
        assert body.param is not None and body.value is not None  # _complete checked
        step = await manager.intervene(run.id, body.param, body.index, body.value)
        param = body.param
    edits = _edits(store, run.id)
    return next(e for e in reversed(edits) if e.step == step and e.param == param)


@router.get(
    "/{run_id}/interventions",
    response_model=InterventionList,
    response_model_exclude_none=True,
    responses=ERRORS,
)
def list_interventions(run: RunDep, store: StoreDep) -> InterventionList:
    """Every edit made to the run, oldest first (the charts mark them)."""
    return InterventionList(interventions=_edits(store, run.id))


def _edits(store: Store, run_id: str) -> list[Intervention]:
    events = store.events(run_id, types=("intervention",))
    return [Intervention(step=e["step"], **e["data"]) for e in events]
