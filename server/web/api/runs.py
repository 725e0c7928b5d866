"""/api/runs: create, list, inspect, control, delete and export runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import StreamingResponse

from gradscope.server.errors import NotFound
from gradscope.server.runs.errors import RunError, UnknownRun
from gradscope.server.runs.fork import BadFork, fork_config
from gradscope.server.store import RunRecord
from gradscope.server.store.export import iter_csv, iter_json, metrics_series
from gradscope.server.web.api.deps import (
    SQLITE_MAX_INT,
    ManagerDep,
    RunDep,
    RunRateDep,
    SettingsDep,
    StoreDep,
)
from gradscope.server.web.api.models import (
    ForkRequest,
    Metrics,
    Problem,
    Run,
    RunCreate,
    RunList,
    RunPatch,
    Snapshot,
    SnapshotKind,
    StepRequest,
)
from gradscope.server.web.limits import SlidingWindow, retry_after

router = APIRouter(prefix="/api/runs", tags=["runs"])
# Each status comes from the error's type, mapped in one place (server/web/errors.py);
# 503: the store failed.
ERRORS = {code: {"model": Problem} for code in (404, 409, 422, 503)}
EXPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object"}},
}
# A body FastAPI cannot read (not UTF-8) is 400; one over GRADSCOPE_MAX_BODY_BYTES is 413
# before it reaches a route (server/limits.py).
BODY_ERRORS = {**ERRORS, 400: {"model": Problem}, 413: {"model": Problem}}
# A command the run's worker must answer: 504 when it does not in GRADSCOPE_COMMAND_TIMEOUT.
TIMEOUT = {504: {"model": Problem, "description": "the run's worker did not answer in time"}}
COMMAND_ERRORS = {**ERRORS, **TIMEOUT}
CREATE_ERRORS = {
    **BODY_ERRORS,
    429: {
        "model": Problem,
        "description": "too many runs created this minute, or the queue is full",
        "headers": {
            "Retry-After": {
                "description": "seconds until another run may be created (rate limit only)",
                "schema": {"type": "integer"},
            }
        },
    },
}


def _run(record: RunRecord) -> Run:
    return Run(**record.to_dict())


def invalid_body(field: str, msg: str) -> HTTPException:
    """A 422 naming the body field, in the shape of FastAPI's own."""
    return HTTPException(
        422, [{"loc": ["body", field], "msg": msg, "type": "value_error", "field": field}]
    )


@router.post("", status_code=201, response_model=Run, responses=CREATE_ERRORS)
async def create_run(body: RunCreate, manager: ManagerDep, rate: RunRateDep) -> Run:
    """Queue a run; it starts as soon as a worker slot is free.

    429 when GRADSCOPE_MAX_RUNS_PER_MINUTE runs were created in the last minute (with
    Retry-After) or GRADSCOPE_MAX_QUEUE runs are already waiting.
    """
    config = manager.resolve(body.preset, body.config)  # a ConfigError is a 422
    take_slot(rate)
    try:
        return _run(await manager.create(config, body.preset, body.name))
    except RunError:
        rate.release()  # no run was created
        raise


def take_slot(rate: SlidingWindow) -> None:
    """Count a run against GRADSCOPE_MAX_RUNS_PER_MINUTE, or answer 429."""
    wait = rate.acquire()
    if wait is not None:
        raise HTTPException(
            429,
            f"too many runs created: at most {rate.limit} a minute "
            f"(GRADSCOPE_MAX_RUNS_PER_MINUTE); try again in {retry_after(wait)} s",
            headers={"Retry-After": retry_after(wait)},
        )


@router.post("/{run_id}/fork", status_code=201, response_model=Run, responses=CREATE_ERRORS)
async def fork_run(run: RunDep, body: ForkRequest, manager: ManagerDep, rate: RunRateDep) -> Run:
    """Start a run (a fork) from this run's state at `step`, with `config` changes to its
    optimizer, length, pace or recording: with none it continues bit for bit as this run did.

    Its history up to `step` is this run's (read through, not copied): GET /history, /frame
    and the websocket's hello of the fork show it. 422 naming `step` for a step this run has
    not recorded, or `config.<field>` for an unknown field or one a fork cannot change (the
    model, data, batch size, seed, engine, loss); 429 as for POST /api/runs.
    """
    try:
        config = fork_config(run, body.step, body.config or {}, manager.resolve)
    except BadFork as e:
        raise invalid_body(e.field, e.message) from None
    name = body.name or (body.config or {}).get("name") or f"{run.name} · fork@{body.step}"
    take_slot(rate)
    try:
        return _run(await manager.create(config, run.preset, name, fork=(run.id, body.step)))
    except RunError:
        rate.release()  # no run was created
        raise


@router.get("", response_model=RunList)
def list_runs(store: StoreDep) -> RunList:
    """All runs, newest first."""
    return RunList(runs=[_run(r) for r in store.list_runs()])


@router.get("/{run_id}", response_model=Run, responses=ERRORS)
def get_run(run: RunDep) -> Run:
    return _run(run)


@router.patch("/{run_id}", response_model=Run, responses={**BODY_ERRORS, **TIMEOUT})
async def patch_run(run: RunDep, body: RunPatch, manager: ManagerDep, store: StoreDep) -> Run:
    """Change a run: its name and tags at any time; its pace (steps per second; null: full
    speed) live, while it has not ended.

    Only the fields given change. The run computes exactly what it would at any pace; 409
    for a pace once it has ended.
    """
    given = body.model_fields_set
    if not given:
        raise invalid_body("body", "give at least one of name, tags, pace")
    for field in ("name", "tags"):
        if field in given and getattr(body, field) is None:
            raise invalid_body(field, f"{field} cannot be null")
    if "pace" in given:  # first: the one change that can be refused (409)
        run = await manager.set_pace(run.id, body.pace)
    changes: dict[str, object] = {}
    if body.name is not None:
        changes["name"] = body.name.strip()
    if body.tags is not None:
        changes["tags"] = list(dict.fromkeys(body.tags))  # each once, in the order given
    if changes:
        updated = store.update_run(run.id, **changes)
        if updated is None:
            raise UnknownRun(run.id)  # deleted meanwhile
        run = updated
    return _run(run)


@router.post("/{run_id}/pause", response_model=Run, responses=COMMAND_ERRORS)
async def pause_run(run: RunDep, manager: ManagerDep) -> Run:
    """Pause a running run after its current step."""
    return _run(await manager.pause(run.id))


@router.post("/{run_id}/resume", response_model=Run, responses=COMMAND_ERRORS)
async def resume_run(run: RunDep, manager: ManagerDep) -> Run:
    """Resume a paused run, or continue an interrupted/crashed one from its last checkpoint."""
    return _run(await manager.resume(run.id))


@router.post("/{run_id}/stop", response_model=Run, responses=COMMAND_ERRORS)
async def stop_run(run: RunDep, manager: ManagerDep) -> Run:
    """Stop a run for good (a final checkpoint is written)."""
    return _run(await manager.stop(run.id))


@router.post("/{run_id}/step", response_model=Run, responses={**BODY_ERRORS, **TIMEOUT})
async def step_run(
    run: RunDep, manager: ManagerDep, settings: SettingsDep, body: StepRequest | None = None
) -> Run:
    """Advance a paused run by n steps (at most GRADSCOPE_MAX_STEP_REQUEST); it stays paused."""
    n = (body or StepRequest()).n
    if n > settings.max_step_request:
        msg = f"at most {settings.max_step_request:,} steps a request (GRADSCOPE_MAX_STEP_REQUEST)"
        raise invalid_body("n", msg)
    return _run(await manager.step(run.id, n))


@router.delete("/{run_id}", status_code=204, responses=COMMAND_ERRORS)
async def delete_run(run: RunDep, manager: ManagerDep) -> Response:
    """Delete a run and its history (an active run is stopped first)."""
    await manager.delete(run.id)
    return Response(status_code=204)


@router.get("/{run_id}/metrics", response_model=Metrics, responses=ERRORS)
def get_metrics(
    run: RunDep,
    store: StoreDep,
    since: Annotated[
        int, Query(ge=0, le=SQLITE_MAX_INT, description="only events after this seq")
    ] = 0,
    names: Annotated[str | None, Query(description="comma-separated metric names")] = None,
) -> Metrics:
    """Metric series after `since`: train_loss every step, test figures every epoch."""
    events = store.events(run.id, since=since, types=("metrics",))
    wanted = [n for n in names.split(",") if n] if names else None
    return Metrics(
        run_id=run.id, since=since, last_seq=run.last_seq, series=metrics_series(events, wanted)
    )


@router.get("/{run_id}/snapshots/{kind}", response_model=Snapshot, responses=ERRORS)
def get_snapshot(
    run: RunDep,
    kind: SnapshotKind,
    store: StoreDep,
    at: Annotated[
        int | None,
        Query(ge=0, le=SQLITE_MAX_INT, description="the latest at or before this step"),
    ] = None,
) -> Snapshot:
    """What the run recorded of one kind, as of a step (default: the latest)."""
    event = store.latest_event(run.id, kind, at_step=at)
    if event is None:
        where = "" if at is None else f" at or before step {at}"
        raise NotFound(f"run {run.id} has no {kind} snapshot{where}")
    return Snapshot(
        run_id=run.id,
        kind=kind,
        step=event["step"],
        seq=event["seq"],
        t=event["t"],
        data=event["data"],
    )


@router.get(
    "/{run_id}/export",
    responses={**ERRORS, 200: {"description": "CSV or JSON", "content": EXPORT_CONTENT}},
)
def export_run(run: RunDep, store: StoreDep, format: Literal["csv", "json"] = "csv") -> Response:
    """Download the run: CSV of its metrics, or JSON of the run and every event."""
    filename = f"gradscope-{run.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    # Streamed from the store a batch at a time (a sync iterator: Starlette runs it in the
    # thread pool), so an export's memory does not grow with the run.
    if format == "csv":
        return StreamingResponse(iter_csv(store, run.id), media_type="text/csv", headers=headers)
    return StreamingResponse(
        iter_json(store, run.id), media_type="application/json", headers=headers
    )
