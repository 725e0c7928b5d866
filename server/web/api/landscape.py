"""/api/runs/{id}/landscape and /sharpness: the loss around recorded weights, on demand.

Nothing here runs while training: a request computes from the run's config, its data and
the weights of a recorded frame (or a checkpoint), in the thread pool, one computation at a
time, within GRADSCOPE_LANDSCAPE_MAX_WORK multiply-adds. A run nobody asks about costs
nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from gradscope.server.errors import Invalid
from gradscope.server.runs.landscape import Landscapes, check_params, compute
from gradscope.server.runs.sharpness import SharpnessSeries
from gradscope.server.web.api.deps import RunDep, SettingsDep
from gradscope.server.web.api.history import ERRORS, STEP, check_step, invalid

router = APIRouter(prefix="/api/runs", tags=["runs"])
MIN_GRID = 3
MAX_SHARPNESS_POINTS = 200
# A Hessian-vector product is two gradients (a forward and a backward each): about six
# forward passes; a power iteration from the last step's vector takes some twenty of them.
SHARPNESS_PASSES = 6 * 20


class Landscape(BaseModel):
    """A 2-D slice of the loss around the weights of one recorded step, the path that led
    there, and the 1-D slice along the gradient."""

    run_id: str
    step: int = Field(description="the recorded step whose weights are the centre")
    mode: str = Field(description="weights: over two chosen weights; directions: Li et al.")
    axes: list[dict[str, Any]] = Field(description="the x and y axis: a weight or a direction")
    n: int = Field(description="grid points a side")
    bounds: list[float | str] = Field(description="[x0, x1, y0, y1] of the grid")
    loss: list[float | str] = Field(description="n*n losses, row-major with y outer, y0 first")
    levels: list[float] = Field(description="contour levels, low to high")
    min: dict[str, Any] = Field(description="the grid's lowest point {x, y, loss}")
    point: dict[str, Any] = Field(description="the step's weights on the slice {x, y, loss}")
    next: dict[str, Any] | None = Field(description="where a plain step of size lr lands")
    path: dict[str, list[Any]] = Field(description="{step, x, y}: every recorded step up to it")
    slice: dict[str, Any] | None = Field(
        description="the loss along the negative gradient: t, loss, start_loss, step_t "
        "(lr * |g|), step_loss, valley_t (the quadratic model's floor), curvature, grad_norm"
    )
    parameters: list[str] | None = Field(description="the names `params` takes (small models)")
    samples: int = Field(description="training rows evaluated")
    train_size: int = Field(description="rows in the training set")
    optimizer: str


class Sharpness(BaseModel):
    """The top eigenvalue of the loss Hessian at recorded steps, and the stability limit."""

    run_id: str
    steps: list[int]
    values: list[float | str]
    limit: float | None = Field(description="2 / lr ((2 + 2 momentum) / lr); None for Adam")
    lr: float
    optimizer: str
    samples: int = Field(description="training rows evaluated")
    train_size: int = Field(description="rows in the training set")


async def landscapes(conn: HTTPConnection) -> tuple[Landscapes, SharpnessSeries]:
    """The app's landscape computations, made on first use (a server never asked pays
    nothing)."""
    state = conn.app.state
    if getattr(state, "landscapes", None) is None:
        s = state.settings
        found = Landscapes(state.store, s.landscape_samples, s.mnist_dir)
        state.landscapes = (found, SharpnessSeries(found))
    return state.landscapes


LandscapesDep = Annotated[tuple[Landscapes, SharpnessSeries], Depends(landscapes)]


def check_work(what: str, work: int, limit: int, field: str) -> None:
    if work > limit:
        raise invalid(
            field,
            f"{what} would take about {work:,} multiply-adds, more than this server's "
            f"limit of {limit:,} (GRADSCOPE_LANDSCAPE_MAX_WORK): ask for fewer",
        )


@router.get("/{run_id}/landscape", response_model=Landscape, responses=ERRORS)
def get_landscape(
    run: RunDep,
    settings: SettingsDep,
    computations: LandscapesDep,
    at: Annotated[
        int | None,
        Query(description="a recorded step (default: the last)", json_schema_extra=STEP),
    ] = None,
    params: Annotated[
        str | None,
        Query(
            description="two weights to slice over, comma-separated (e.g. w0,w1); default: "
            "two filter-normalised random directions (Li et al. 2018)"
        ),
    ] = None,
    n: Annotated[
        int,
        Query(
            description="grid points a side (at most GRADSCOPE_LANDSCAPE_MAX_GRID)",
            json_schema_extra={"minimum": MIN_GRID, "maximum": 201},
        ),
    ] = 41,
    seed: Annotated[
        int,
        Query(
            description="seed of the random directions",
            json_schema_extra={"minimum": 0, "maximum": 2**31},
        ),
    ] = 0,
) -> Landscape:
    """The true loss over a grid around the weights of a recorded step: a slice over two
    weights (the others held) or two random directions, the path of every recorded step up
    to it projected on the slice, and the loss along the gradient marking where a step of
    the learning rate lands."""
    check_step("at", at)
    limit = settings.landscape_max_grid
    if not MIN_GRID <= n <= limit:
        raise invalid("n", f"n must be from {MIN_GRID} to {limit} (GRADSCOPE_LANDSCAPE_MAX_GRID)")
    if not 0 <= seed <= 2**31:
        raise invalid("seed", "seed must be from 0 to 2**31")
    wanted = None if params is None else [p.strip() for p in params.split(",")]
    found, _ = computations
    with found.lock:
        problem = found.problem(run)
        if wanted is not None:
            try:
                check_params(problem, wanted)
            except Invalid as e:
                raise invalid("params", e.message) from None
        size = len(problem.names) * problem.rows
        check_work(f"a {n}x{n} grid", n * n * size, settings.landscape_max_work, "n")
        step, theta, steps, path = found.weights_at(run, problem, at)
        result = compute(problem, step, theta, steps, path, wanted, n, seed)
    return Landscape(run_id=run.id, **result)


@router.get("/{run_id}/sharpness", response_model=Sharpness, responses=ERRORS)
def get_sharpness(
    run: RunDep,
    settings: SettingsDep,
    computations: LandscapesDep,
    points: Annotated[
        int,
        Query(
            description="recorded steps to evaluate at most (evenly spaced, the last kept)",
            json_schema_extra={"minimum": 1, "maximum": MAX_SHARPNESS_POINTS},
        ),
    ] = 100,
) -> Sharpness:
    """The sharpness (the top eigenvalue of the loss Hessian, by power iteration on
    Hessian-vector products) at up to `points` recorded steps, against 2 / lr: past it,
    gradient descent diverges (Cohen et al. 2021, the edge of stability)."""
    if not 1 <= points <= MAX_SHARPNESS_POINTS:
        raise invalid("points", f"points must be from 1 to {MAX_SHARPNESS_POINTS}")
    found, series = computations
    with found.lock:
        problem = found.problem(run)
        size = len(problem.names) * problem.rows
        work = points * SHARPNESS_PASSES * size
        check_work(f"{points} sharpness points", work, settings.landscape_max_work, "points")
        result = series.series(run, points)
    return Sharpness(run_id=run.id, **result)
