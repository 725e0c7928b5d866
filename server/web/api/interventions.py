"""/api/runs/{id}/interventions: a person edits a paused run (one weight at a time), and the
edits made so far. Each edit is an `intervention` event; training continues from it."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gradscope.server.store import Store
from gradscope.server.web.api.deps import ManagerDep, RunDep, StoreDep
from gradscope.server.web.api.runs import BODY_ERRORS, ERRORS, TIMEOUT

router = APIRouter(prefix="/api/runs", tags=["runs"])
MAX_WEIGHT = 1e6  # a hand-set weight beyond this is a typo, not an experiment


class InterventionRequest(BaseModel):
    """Set one weight (or bias) of a paused run."""

    model_config = ConfigDict(extra="forbid")
    param: str = Field(
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
    value: float = Field(description=f"the new value, finite, at most {MAX_WEIGHT:g} in size")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or abs(v) > MAX_WEIGHT:
            raise ValueError(f"must be a finite number of size at most {MAX_WEIGHT:g}")
        return v


class Intervention(BaseModel):
    """One edit, as recorded."""

    step: int = Field(description="the step the run was paused at")
    what: str = Field(description="what was edited: weight")
    param: str
    index: list[int]
    old: float
    new: float


class InterventionList(BaseModel):
    interventions: list[Intervention]


@router.post(
    "/{run_id}/interventions",
    status_code=201,
    response_model=Intervention,
    responses={**BODY_ERRORS, **TIMEOUT},
)
async def intervene(
    run: RunDep, body: InterventionRequest, manager: ManagerDep, store: StoreDep
) -> Intervention:
    """Set one weight of a paused run (409 if it is not paused; 422 naming `param` or `index`
    when the model has no such weight). The edit is recorded as an `intervention` event, the
    step's frame is recorded again, and training continues from the edited weights."""
    step = await manager.intervene(run.id, body.param, body.index, body.value)
    edits = _edits(store, run.id)
    return next(e for e in reversed(edits) if e.step == step and e.param == body.param)


@router.get("/{run_id}/interventions", response_model=InterventionList, responses=ERRORS)
def list_interventions(run: RunDep, store: StoreDep) -> InterventionList:
    """Every edit made to the run, oldest first (the charts mark them)."""
    return InterventionList(interventions=_edits(store, run.id))


def _edits(store: Store, run_id: str) -> list[Intervention]:
    events = store.events(run_id, types=("intervention",))
    return [Intervention(step=e["step"], **e["data"]) for e in events]
