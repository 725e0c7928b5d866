"""/api/sweeps: a run for each setting of some config keys times some seeds (runs/sweeps.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from gradscope.server.runs.ingest import create_external
from gradscope.server.runs.sweeps import (
    TAG_PREFIX,
    BadSweep,
    Sweeps,
    SweepSpec,
    check_room,
    plan,
    view,
)
from gradscope.server.web.api.deps import ManagerDep, RunRateDep, SettingsDep, StoreDep
from gradscope.server.web.api.models import Problem, Run
from gradscope.server.web.api.runs import take_slot

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])
ERRORS = {code: {"model": Problem} for code in (404, 422, 503)}
CREATE_ERRORS = {
    **ERRORS,
    400: {"model": Problem},
    413: {"model": Problem},
    429: {
        "model": Problem,
        "description": "too many runs created this minute, or the queue has no room for them",
    },
}


class Trial(BaseModel):
    """One run of the sweep: its swept values and seed (run_id null: not made)."""

    run_id: str | None
    values: dict[str, Any]
    seed: int
    name: str


class BestSetting(BaseModel):
    """The setting whose runs' final metric has the best mean over its seeds."""

    values: dict[str, Any]
    mean: float
    runs: list[str]


class Sweep(BaseModel):
    """A sweep, its runs as they are now, and its best run and setting so far."""

    id: str
    name: str
    created_at: float
    spec: dict[str, Any] = Field(description="the sweep as it was asked for (POST /api/sweeps)")
    group: list[str] = Field(description="the swept config keys: GET /api/compare?group=")
    metric: str = Field(description="the summary metric that names the best run (final value)")
    executor: str = Field(description="server (this server's queue) or ray")
    state: str = Field(description="active while a run is queued, running or paused; else done")
    counts: dict[str, int] = Field(description="runs in each state")
    trials: list[Trial]
    runs: list[Run]
    best_run: str | None = Field(description="the run with the best final metric so far")
    best_value: float | None
    best_setting: BestSetting | None


class SweepList(BaseModel):
    sweeps: list[Sweep]


def sweep_error(e: BadSweep) -> HTTPException:
    """A 422 naming the sweep's field, in the shape of FastAPI's own."""
    head, _, key = e.field.partition(".")
    loc = ["body", head, key] if head in ("space", "config") and key else ["body", e.field]
    return HTTPException(
        422, [{"loc": loc, "msg": e.message, "type": "value_error", "field": e.field}]
    )


def _sweeps(request: Request) -> Sweeps:
    return Sweeps(request.app.state.settings.data_dir)


@router.post("", status_code=201, response_model=Sweep, responses=CREATE_ERRORS)
async def create_sweep(
    spec: SweepSpec,
    request: Request,
    manager: ManagerDep,
    store: StoreDep,
    settings: SettingsDep,
    rate: RunRateDep,
) -> Sweep:
    """Make a run for each setting of the space times `seeds` (at most max_runs and
    GRADSCOPE_MAX_SWEEP_RUNS); 422 names the field (an unknown config key in the space, an
    empty grid, too many runs). executor server: the runs are queued here at once;
    executor ray: they wait, external, for `gradscope sweep --ray` to run them."""
    try:
        trials = plan(spec, manager.resolve, settings.max_sweep_runs)
    except BadSweep as e:
        raise sweep_error(e) from None
    if spec.executor == "server":
        check_room(len(manager.queue), len(trials), settings.max_queue)
    take_slot(rate)  # a sweep is one creation: its runs are bounded by its own limit
    sweeps = _sweeps(request)
    record = sweeps.new(spec, trials)
    tags = [f"{TAG_PREFIX}{record['id']}"]
    made = 0
    try:
        for trial, entry in zip(trials, record["trials"], strict=True):
            if spec.executor == "server":
                run = await manager.create(trial.config, spec.preset, trial.name)
                store.update_run(run.id, tags=tags)
            else:
                run = create_external(
                    store,
                    name=trial.name,
                    config=trial.config.model_dump(mode="json"),
                    preset=spec.preset,
                    tags=[*tags, "ray"],
                    total_steps=trial.config.total_steps(),
                    state="queued",
                )
            entry["run_id"] = run.id
            made += 1
    finally:
        if made:  # what was made is a sweep, even if the rest could not be
            sweeps.save(record)
        else:
            rate.release()
    return Sweep(**view(record, store))


@router.get("", response_model=SweepList, responses={503: {"model": Problem}})
def list_sweeps(request: Request, store: StoreDep) -> SweepList:
    """Every sweep, newest first, with its runs' states and its best run."""
    return SweepList(sweeps=[Sweep(**view(r, store)) for r in _sweeps(request).all()])


@router.get("/{sweep_id}", response_model=Sweep, responses=ERRORS)
def get_sweep(sweep_id: str, request: Request, store: StoreDep) -> Sweep:
    """A sweep, its runs as they are now, and its best run and setting so far."""
    return Sweep(**view(_sweeps(request).get(sweep_id), store))
