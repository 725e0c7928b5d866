"""/api/runs/{id}/history and /frame: a run of any length, summarised, and its frames."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from gradscope.server.errors import NotFound
from gradscope.server.web.api.deps import SQLITE_MAX_INT, RunDep, StoreDep
from gradscope.server.web.api.models import Problem

router = APIRouter(prefix="/api/runs", tags=["runs"])
ERRORS = {code: {"model": Problem} for code in (404, 422, 503)}
MAX_POINTS = 10_000
# The bounds are published in the schema but checked here, so that a 422 names its field
# (as the other 422s do) rather than being FastAPI's own.
STEP = {"minimum": 0, "maximum": SQLITE_MAX_INT}


class HistorySeries(BaseModel):
    """One series in buckets: each bucket's first step, min, max and last value."""

    step: list[int]
    min: list[float]
    max: list[float]
    last: list[float]


class History(BaseModel):
    """Every series (or those named) over steps from..to, at most `points` buckets each."""

    model_config = ConfigDict(populate_by_name=True)
    run_id: str
    from_: int = Field(alias="from", description="the first step summarised")
    to: int = Field(description="the last step summarised")
    points: int = Field(description="at most this many buckets a series")
    series: dict[str, HistorySeries]


class Frame(BaseModel):
    """The whole picture at one step: each snapshot type's latest event at or before it."""

    run_id: str
    step: int
    events: list[dict[str, Any]]


def invalid(field: str, msg: str) -> HTTPException:
    """A 422 naming the query parameter, in the shape of the other 422s."""
    detail = [{"loc": ["query", field], "msg": msg, "type": "value_error", "field": field}]
    return HTTPException(422, detail)


def check_range(start: int | None, end: int | None, points: int) -> None:
    """The `from`, `to` and `points` of a bucketed read (history, compare), or a 422."""
    if not 1 <= points <= MAX_POINTS:
        raise invalid("points", f"points must be from 1 to {MAX_POINTS:,}")
    check_step("from", start)
    check_step("to", end)
    if start is not None and end is not None and start > end:
        raise invalid("from", "from must not be after to")


def check_step(field: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= SQLITE_MAX_INT:
        raise invalid(field, f"{field} must be a step from 0 to 2**63 - 1")


@router.get("/{run_id}/history", response_model=History, responses=ERRORS)
def get_history(
    run: RunDep,
    store: StoreDep,
    names: Annotated[
        str | None, Query(description="comma-separated series names (default: all)")
    ] = None,
    start: Annotated[
        int | None,
        Query(
            alias="from",
            description="the first step (default: the run's first)",
            json_schema_extra=STEP,
        ),
    ] = None,
    end: Annotated[
        int | None,
        Query(
            alias="to",
            description="the last step (default: the run's last)",
            json_schema_extra=STEP,
        ),
    ] = None,
    points: Annotated[
        int,
        Query(
            description="at most this many buckets a series",
            json_schema_extra={"minimum": 1, "maximum": MAX_POINTS},
        ),
    ] = 1000,
) -> History:
    """Each series in at most `points` buckets of its first step, min, max and last value:
    exact (no spike is ever hidden) and quick at any run length."""
    check_range(start, end, points)
    wanted = [n for n in names.split(",") if n] if names else None
    history = store.history(run.id, wanted, start, end, points)
    return History(run_id=run.id, **history)


@router.get("/{run_id}/frame", response_model=Frame, responses=ERRORS)
def get_frame(
    run: RunDep,
    store: StoreDep,
    at: Annotated[
        int | None,
        Query(
            description="the frame at or before this step (default: the last)",
            json_schema_extra=STEP,
        ),
    ] = None,
    after: Annotated[
        int | None,
        Query(description="the first frame after this step", json_schema_extra=STEP),
    ] = None,
) -> Frame:
    """The whole picture at one step: the latest weights, health, boundary, graph values ...
    as of the frame step (a step that recorded any of weights, histograms, health,
    graph_values, boundary)."""
    check_step("at", at)
    check_step("after", after)
    if at is not None and after is not None:
        raise invalid("after", "give at or after, not both")
    frame = store.frame(run.id, at=at, after=after)
    if frame is None:
        where = "" if at is None else f" at or before step {at}"
        where = where if after is None else f" after step {after}"
        raise NotFound(f"run {run.id} has no frame{where}")
    return Frame(run_id=run.id, **frame)
