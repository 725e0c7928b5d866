"""/api/compare: several runs' metric on one step grid, each group of runs as a mean and band.

Every run's series is read as history buckets (Store.history) over one step range and one
bucket plan, so bucket i of every run covers the same steps. Runs are grouped by the values
of the config keys in `group` (none: each run is its own group); at each bucket, a group's
line is the mean of its members' values there (each member's bucket `last`, as the loss
chart draws it), and its band their min and max (and std). A group is all the seeds of one
setting when `group` names every key that differs but the seed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gradscope.server.errors import Invalid
from gradscope.server.store import RunRecord, Store
from gradscope.server.store.blocks import FINEST
from gradscope.server.store.history import plan
from gradscope.server.store.series import kind_of
from gradscope.server.web.api.deps import SettingsDep, StoreDep, find_run
from gradscope.server.web.api.history import MAX_POINTS, STEP, check_range, invalid
from gradscope.server.web.api.models import Problem, Run

router = APIRouter(prefix="/api", tags=["compare"])
ERRORS = {code: {"model": Problem} for code in (404, 422, 503)}
MAX_GROUP_KEYS = 8
MIN_BLOCK_POINTS = 150  # the fewest buckets a line is read in from whole blocks
# The metrics every page offers, first in the list (the rest: any series a run records).
MAIN_METRICS = ("train_loss", "test_loss", "test_acc", "train_acc")
KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
SERIES = re.compile(r"[\w./\[\]-]{1,200}")


class Line(BaseModel):
    """One group's line: its members, the config values they share, and per bucket the
    members' mean, min, max and std (n: members with a value there); a line of one run has
    its values in `mean` alone (min, max and std null)."""

    key: str = Field(description="the group's label: key=value pairs, or the run's name")
    runs: list[str] = Field(description="the member runs' ids")
    values: dict[str, Any] = Field(description="the grouped config keys' values")
    step: list[int] = Field(description="each bucket's first step (its members' earliest)")
    t: list[float | None] | None = Field(
        description="x=time: seconds since each member's first metric, their mean"
    )
    mean: list[float]
    min: list[float] | None
    max: list[float] | None
    std: list[float] | None
    n: list[int]


class Comparison(BaseModel):
    """The compared runs, the metric's lines over steps from..to, and what may be chosen."""

    model_config = ConfigDict(populate_by_name=True)
    metric: str
    group: list[str]
    x: Literal["step", "time"]
    from_: int = Field(alias="from")
    to: int
    points: int = Field(
        description="at most this many buckets a line (fewer for a long range: whole blocks)"
    )
    runs: list[Run] = Field(description="the runs, in the order asked (config, summary, tags)")
    metrics: list[str] = Field(description="the series these runs record (the metric choices)")
    lines: list[Line]


def config_value(config: dict[str, Any], key: str) -> Any:
    """A dotted key's value in a config (None where the key is missing)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _label(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def _mean_or_none(columns: np.ndarray) -> list[float | None]:
    """Each column's mean over its known values; None where it has none."""
    known = ~np.isnan(columns)
    total = np.where(known, columns, 0.0).sum(axis=0)
    count = known.sum(axis=0)
    return [None if c == 0 else float(t / c) for t, c in zip(total, count, strict=True)]


def _ids(text: str, limit: int) -> list[str]:
    ids = list(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    if not ids:
        raise invalid("runs", "name at least one run: runs=ID1,ID2")
    if len(ids) > limit:
        raise invalid("runs", _too_many(len(ids), limit))
    return ids


def _too_many(n: int, limit: int) -> str:
    return f"at most {limit} runs on one comparison (GRADSCOPE_MAX_COMPARED), not {n}"


def _group_keys(text: str | None, runs: list[RunRecord]) -> list[str]:
    keys = list(dict.fromkeys(k.strip() for k in (text or "").split(",") if k.strip()))
    if len(keys) > MAX_GROUP_KEYS:
        raise invalid("group", f"at most {MAX_GROUP_KEYS} config keys to group by")
    for key in keys:
        if not KEY.fullmatch(key):
            raise invalid("group", f"{key!r} is not a config key (e.g. optimizer.lr)")
        values = [config_value(r.config, key) for r in runs]
        if all(v is None or isinstance(v, dict) for v in values):
            raise invalid("group", f"no compared run has the config key {key!r}")
    return keys


def _times(store: Store, run_id: str, steps: np.ndarray) -> np.ndarray:
    """Seconds since the run's first metrics row at each step, from its rows' (step, t):
    exact at each commit, interpolated between them."""
    rows = store.metric_times(run_id)
    if not len(rows):
        return np.full(len(steps), np.nan)
    return np.interp(steps, rows[:, 0], rows[:, 1]) - rows[0, 1]


def compare_runs(
    store: Store,
    runs: list[RunRecord],
    metric: str,
    group: list[str],
    x: str,
    start: int | None,
    end: int | None,
    points: int,
) -> dict[str, Any]:
    """The comparison's JSON (see Comparison)."""
    ranges = [store.history(r.id, names=(), start=start, end=end, points=1) for r in runs]
    s0 = start if start is not None else min(h["from"] for h in ranges)
    s1 = end if end is not None else max(max(h["to"] for h in ranges), s0)
    # A line draws each bucket's last value, so buckets of whole blocks lose it nothing: where
    # they still make MIN_BLOCK_POINTS buckets, the runs are read from their block summaries
    # rather than from every raw step (20 runs of 100,000 steps: ~50x quicker).
    blocks_fit = (s1 - s0 + 1) // FINEST
    if (s1 - s0 + 1) // points < FINEST <= (s1 - s0 + 1) // MIN_BLOCK_POINTS:
        points = min(points, blocks_fit)
    width, level = plan(s0, s1, points)
    nb = -(-(s1 - s0 + 1) // width)
    value = np.full((len(runs), nb), np.nan)
    first = np.full((len(runs), nb), np.nan)
    seconds = np.full((len(runs), nb), np.nan)
    names: set[str] = set()
    for i, run in enumerate(runs):
        names.update(n for n in store.series_names(run.id) if kind_of(n) != "weights")
        s = store.history(run.id, [metric], s0, s1, points)["series"].get(metric)
        if not s:
            continue
        steps = np.array(s["step"], np.int64)
        bucket = np.maximum(steps // level * level - s0, 0) // width
        value[i, bucket] = s["last"]
        first[i, bucket] = steps
        if x == "time":
            seconds[i, bucket] = _times(store, run.id, steps)
    members: dict[tuple, list[int]] = {}
    for i, run in enumerate(runs):
        key = tuple(repr(config_value(run.config, k)) for k in group) if group else (run.id,)
        members.setdefault(key, []).append(i)
    lines = []
    for rows in members.values():
        v = value[rows]
        n = np.sum(~np.isnan(v), axis=0)
        keep = n > 0
        v, n = v[:, keep], n[keep]
        values = {k: config_value(runs[rows[0]].config, k) for k in group}
        key = ", ".join(f"{k.rsplit('.', 1)[-1]}={_label(values[k])}" for k in group)
        lines.append(
            {
                "key": key if group else runs[rows[0]].name,
                "runs": [runs[i].id for i in rows],
                "values": values,
                "step": np.nanmin(first[rows][:, keep], axis=0).astype(np.int64).tolist(),
                "t": _mean_or_none(seconds[rows][:, keep]) if x == "time" else None,
                "mean": np.nanmean(v, axis=0).tolist(),
                "min": np.nanmin(v, axis=0).tolist() if len(rows) > 1 else None,
                "max": np.nanmax(v, axis=0).tolist() if len(rows) > 1 else None,
                "std": np.nanstd(v, axis=0).tolist() if len(rows) > 1 else None,
                "n": n.tolist(),
            }
        )
    ordered = [m for m in MAIN_METRICS if m in names or m == "train_loss"]
    return {
        "metric": metric,
        "group": group,
        "x": x,
        "from": s0,
        "to": s1,
        "points": points,
        "runs": [r.to_dict() for r in runs],
        "metrics": ordered + sorted(names - set(ordered)),
        "lines": lines,
    }


@router.get("/compare", response_model=Comparison, responses=ERRORS)
def get_comparison(
    store: StoreDep,
    settings: SettingsDep,
    runs: Annotated[
        str, Query(description="comma-separated run ids (at most GRADSCOPE_MAX_COMPARED)")
    ],
    metric: Annotated[
        str, Query(description="a series: train_loss, test_loss, test_acc, grad_norm/0.weight ...")
    ] = "train_loss",
    group: Annotated[
        str | None,
        Query(description="comma-separated config keys to group runs by (e.g. optimizer.lr)"),
    ] = None,
    x: Annotated[
        Literal["step", "time"], Query(description="time: seconds since each run's start")
    ] = "step",
    start: Annotated[
        int | None,
        Query(
            alias="from",
            description="the first step (default: the runs' first)",
            json_schema_extra=STEP,
        ),
    ] = None,
    end: Annotated[
        int | None,
        Query(
            alias="to",
            description="the last step (default: the runs' last)",
            json_schema_extra=STEP,
        ),
    ] = None,
    points: Annotated[
        int,
        Query(
            description="at most this many buckets a line",
            json_schema_extra={"minimum": 1, "maximum": MAX_POINTS},
        ),
    ] = 1000,
) -> Comparison:
    """Runs' metric on one step grid: a line per run, or per group of runs (a mean with a
    min-max and std band over its members: e.g. the seeds of each learning rate); 404 names
    an unknown run."""
    check_range(start, end, points)
    if not SERIES.fullmatch(metric):
        raise invalid("metric", "metric must be a series name (e.g. train_loss)")
    ids = _ids(runs, settings.max_compared)
    records = [find_run(store, run_id) for run_id in ids]  # unknown: 404
    keys = _group_keys(group, records)
    out = compare_runs(store, records, metric, keys, x, start, end, points)
    if metric not in out["metrics"] and metric not in MAIN_METRICS:
        raise invalid("metric", f"no compared run records {metric!r}")
    return Comparison(**out)


def check_count(ids: list[str], limit: int) -> None:
    """Refuse more runs than one comparison takes (the /compare page's check)."""
    if len(ids) > limit:
        raise Invalid(_too_many(len(ids), limit))
