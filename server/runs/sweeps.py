"""Sweeps: one request makes a run for each setting of some config keys (a grid, or random
samples of ranges) times a number of seeds.

A sweep is a JSON file, data_dir/sweeps/<id>.json (its spec, its trials and their run ids);
its runs carry the tag `sweep:<id>` and names like "<sweep> lr=0.01 seed=1". On this
machine they go through the run manager's queue (GRADSCOPE_MAX_CONCURRENT at a time); on a
Ray cluster (server/ray_tune.py) they are external runs that each trial streams to.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gradscope.server.errors import Busy, GradscopeError, Invalid, NotFound
from gradscope.server.runs.config import ConfigError, RunConfig, Text, deep_merge, field_path
from gradscope.server.store import ACTIVE_STATES, ERROR_STATES, RunRecord, Store
from gradscope.server.store.summary import BEST

SWEEP_ID = re.compile(r"[0-9a-f]{12}")
KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")  # a dotted config key (as compare.py's)
MAX_VALUES = 1000  # values of one key in a grid
TAG_PREFIX = "sweep:"
Metric = Literal["test_loss", "test_acc", "train_loss", "train_acc"]


class SweepError(GradscopeError):
    """A sweep request that cannot be served."""


class BadSweep(SweepError, Invalid):
    """A sweep that cannot run; `field` is the dotted path of the culprit (space.optimizer.lr)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownSweep(SweepError, NotFound):
    """No sweep has this id."""

    def __init__(self, sweep_id: str) -> None:
        super().__init__(f"no sweep with id {sweep_id!r}")


class SweepTooBig(SweepError, Busy):
    """The run queue has no room for the sweep's runs now."""


class Range(BaseModel):
    """A range to draw values from (random search): uniform, or log-uniform with `log`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    min: float
    max: float
    log: bool = False
    integer: bool = Field(False, description="round each value to a whole number")


class SweepSpec(BaseModel):
    """A sweep: a preset or config, a space over config keys, seeds and a cap on runs."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: Text | None = Field(None, min_length=1, max_length=100)
    preset: Text | None = Field(None, max_length=100, description="preset name")
    config: dict[str, Any] | None = Field(
        None, description="config fields; with a preset, overrides merged into its config"
    )
    space: dict[str, list[Any] | Range] = Field(
        description="dotted config key -> a list of values (grid) or {min, max, log} (random)"
    )
    samples: int | None = Field(
        None, ge=1, le=10_000, description="random search: this many settings drawn"
    )
    seeds: int = Field(1, ge=1, le=100, description="runs of each setting, seeds seed, seed+1, ..")
    max_runs: int | None = Field(None, ge=1, description="refuse a sweep of more runs")
    metric: Metric = Field("test_loss", description="what names the best run (final value)")
    search_seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the random draws")
    executor: Literal["server", "ray"] = Field(
        "server", description="server: this server's queue; ray: `gradscope sweep --ray` runs it"
    )


@dataclass
class Trial:
    """One run of a sweep: its swept values, its seed, its config and its name."""

    values: dict[str, Any]
    seed: int
    config: RunConfig
    name: str


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ",".join(map(_short, value)) + "]"
    return str(value)


def _settings(spec: SweepSpec, limit: int) -> list[dict[str, Any]]:
    """Each setting of the swept keys: the grid's product, or `samples` random draws."""
    for key, values in spec.space.items():
        where = f"space.{key}"
        if not KEY.fullmatch(key):
            raise BadSweep(where, f"{key!r} is not a config key (e.g. optimizer.lr)")
        if isinstance(values, list):
            if not values:
                raise BadSweep(where, "an empty grid: give at least one value")
            if len(values) > MAX_VALUES:
                raise BadSweep(where, f"at most {MAX_VALUES} values")
            if any(isinstance(v, dict) for v in values):
                raise BadSweep(where, "a value is a setting's value, not a group of settings")
        else:
            if values.min > values.max:
                raise BadSweep(where, "min is above max")
            if values.log and values.min <= 0:
                raise BadSweep(where, "a log range needs min > 0")
            if spec.samples is None:
                raise BadSweep(where, "a range is sampled: give samples (random search)")
    if "seed" in spec.space and spec.seeds > 1:
        raise BadSweep("seeds", "the space sweeps seed itself: leave seeds at 1")
    if spec.samples is None:
        count = math.prod(len(v) for v in spec.space.values() if isinstance(v, list))
        _check_count(spec, count, limit)
        keys = list(spec.space)
        grid = itertools.product(*(spec.space[k] for k in keys))
        return [dict(zip(keys, combo, strict=True)) for combo in grid]
    _check_count(spec, spec.samples, limit)
    rng = random.Random(spec.search_seed)
    return [
        {key: _draw(rng, values) for key, values in spec.space.items()} for _ in range(spec.samples)
    ]


def _draw(rng: random.Random, values: list[Any] | Range) -> Any:
    if isinstance(values, list):
        return rng.choice(values)
    lo, hi = values.min, values.max
    x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if values.log else rng.uniform(lo, hi)
    return round(x) if values.integer else float(f"{x:.6g}")


def _check_count(spec: SweepSpec, settings: int, limit: int) -> None:
    runs = settings * spec.seeds
    made = f"{settings:,} setting(s) x {spec.seeds} seed(s) = {runs:,} runs"
    if spec.max_runs is not None and runs > spec.max_runs:
        raise BadSweep("max_runs", f"the space makes {made}, more than max_runs {spec.max_runs}")
    if runs > limit:
        raise BadSweep(
            "max_runs",
            f"the space makes {made}, more than this server's limit of {limit} "
            "(GRADSCOPE_MAX_SWEEP_RUNS)",
        )


def _config_error(e: ConfigError, spec: SweepSpec, values: dict[str, Any]) -> BadSweep:
    """A config error of one setting, named where the sweep's body holds the culprit."""
    if e.field == "preset":
        return BadSweep("preset", e.message)
    path = field_path(e.field)
    for key in spec.space:
        parts = key.split(".")
        if path[: len(parts)] == parts or parts[: len(path)] == path:
            what = "unknown config key" if e.message == "unknown field" else e.message
            return BadSweep(f"space.{key}", f"{what} (at {key}={_short(values[key])})")
    return BadSweep(f"config.{e.field}", e.message)


def plan(
    spec: SweepSpec,
    resolve: Callable[[str | None, dict[str, Any]], RunConfig],
    limit: int,
) -> list[Trial]:
    """Every run of the sweep, each config resolved (BadSweep names the field otherwise)."""
    if not spec.space:
        raise BadSweep("space", "give at least one config key and its values")
    name = spec.name or spec.preset or "sweep"
    trials = []
    for values in _settings(spec, limit):
        overrides = dict(spec.config or {})
        for key, value in values.items():
            overrides = deep_merge(overrides, _nested(key, value))
        try:
            base = resolve(spec.preset, overrides)
            seeds = [base.seed + i for i in range(spec.seeds)]
            configs = [base] + [resolve(spec.preset, {**overrides, "seed": s}) for s in seeds[1:]]
        except ConfigError as e:
            raise _config_error(e, spec, values) from None
        label = " ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in values.items())
        for seed, config in zip(seeds, configs, strict=True):
            run_name = f"{name} {label}" + (f" seed={seed}" if spec.seeds > 1 else "")
            trials.append(Trial(values, seed, config, run_name[:200]))
    return trials


def group_keys(spec: SweepSpec) -> list[str]:
    """The keys a sweep's comparison groups by: the swept ones (seeds averaged)."""
    return [k for k in spec.space if k != "seed"] or ["seed"]


class Sweeps:
    """The sweep files in data_dir/sweeps/ (written whole: a reader never sees half)."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / "sweeps"

    def path(self, sweep_id: str) -> Path:
        if not SWEEP_ID.fullmatch(sweep_id):
            raise UnknownSweep(sweep_id)  # not our shape: no path is built from it
        return self.folder / f"{sweep_id}.json"

    def new(self, spec: SweepSpec, trials: list[Trial]) -> dict[str, Any]:
        """A sweep record for these trials (their run ids filled in as the runs are made)."""
        sweep_id = uuid.uuid4().hex[:12]
        return {
            "id": sweep_id,
            "name": spec.name or f"{spec.preset or 'sweep'} {sweep_id[:6]}",
            "created_at": time.time(),
            "spec": spec.model_dump(mode="json"),
            "group": group_keys(spec),
            "metric": spec.metric,
            "executor": spec.executor,
            "trials": [
                {"run_id": None, "values": t.values, "seed": t.seed, "name": t.name} for t in trials
            ],
        }

    def save(self, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(record["id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, separators=(",", ":")))
        os.replace(tmp, path)

    def get(self, sweep_id: str) -> dict[str, Any]:
        try:
            return json.loads(self.path(sweep_id).read_text())
        except FileNotFoundError:
            raise UnknownSweep(sweep_id) from None

    def delete(self, sweep_id: str) -> None:
        self.path(sweep_id).unlink(missing_ok=True)

    def all(self) -> list[dict[str, Any]]:
        """Every sweep, newest first."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in self.folder.glob("*.json"):
            if SWEEP_ID.fullmatch(path.stem):
                try:
                    out.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue  # removed or being replaced meanwhile
        return sorted(out, key=lambda r: r["created_at"], reverse=True)


def view(record: dict[str, Any], store: Store) -> dict[str, Any]:
    """A sweep with its runs as they are now, its state and its best run and setting."""
    ids = [t["run_id"] for t in record["trials"] if t["run_id"]]
    runs = [r for r in (store.get_run(i) for i in ids) if r is not None]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    metric = record["metric"]
    pick = BEST[metric]
    # A run that failed or crashed is no candidate, however far it got.
    scored = [
        (r.summary[metric]["final"], r)
        for r in runs
        if metric in r.summary and r.state not in ERROR_STATES
    ]
    best = pick(scored, key=lambda s: s[0]) if scored else None
    return {
        **{k: record[k] for k in ("id", "name", "created_at", "spec", "group", "metric")},
        "executor": record["executor"],
        "state": "active" if any(r.state in ACTIVE_STATES for r in runs) else "done",
        "counts": counts,
        "trials": record["trials"],
        "runs": [r.to_dict() for r in runs],
        "best_run": None if best is None else best[1].id,
        "best_value": None if best is None else best[0],
        "best_setting": _best_setting(record, runs, metric),
    }


def _best_setting(
    record: dict[str, Any], runs: list[RunRecord], metric: str
) -> dict[str, Any] | None:
    """The setting whose runs' final `metric` has the best mean over its seeds (those that
    did not fail)."""
    final = {
        r.id: r.summary[metric]["final"]
        for r in runs
        if metric in r.summary and r.state not in ERROR_STATES
    }
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for t in record["trials"]:
        if t["run_id"] in final:
            key = json.dumps(t["values"], sort_keys=True)
            groups.setdefault(key, (t["values"], []))[1].append(t["run_id"])
    if not groups:
        return None
    means = [
        (sum(final[i] for i in ids) / len(ids), values, ids) for values, ids in groups.values()
    ]
    mean, values, ids = BEST[metric](means, key=lambda m: m[0])
    return {"values": values, "mean": mean, "runs": ids}


def check_room(queued: int, wanted: int, max_queue: int) -> None:
    """Refuse a sweep whose runs the queue cannot take now (no half-made sweeps)."""
    if queued + wanted > max_queue:
        raise SweepTooBig(
            f"the sweep's {wanted} runs do not fit in the queue ({queued} of "
            f"{max_queue} places taken, GRADSCOPE_MAX_QUEUE); try again when runs have started"
        )
