"""Series: every metric, health figure and shown weight as (step, value) samples.

A series is one number over steps: each numeric metric but `epoch` (`train_loss`,
`test_loss`, ...), `grad_norm/<param>`, `update_ratio/<param>` and `dead_relu/<module>` from
health events, and the first MAX_WEIGHTS values of a weights event (`weight/<name>`, or
`weight/<name>[i]` for a parameter of several values: the weights panel's names). Nulls and
non-finite values are not samples. This module takes them from events, as the loop hands
them to the store or as the rows hold them; blocks.py keeps their summaries.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from typing import Any

import numpy as np

from gradscope.server.store.encoding import PACK_DTYPE

MAX_WEIGHTS = 24  # the weights panel's trajectories
SERIES_KEY = "_series"  # an encoded event's samples, taken before encoding (never written)
SNAPSHOT_SERIES = ("health", "weights")  # the event types that carry series besides metrics
KINDS = ("metrics", *SNAPSHOT_SERIES)
HEALTH_GROUPS = ("grad_norm", "update_ratio", "dead_relu")


def kind_of(name: str) -> str:
    """The event type a series comes from: metrics, health or weights."""
    if name.startswith("weight/"):
        return "weights"
    return "health" if name.split("/", 1)[0] in HEALTH_GROUPS else "metrics"


def _number(value: Any) -> bool:
    """Whether a JSON value is a finite number (nulls, "nan" strings and booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def snapshot_values(kind: str, data: dict[str, Any]) -> list[tuple[str, float]]:
    """The (series, value) pairs of a health or weights event's plain data."""
    out: list[tuple[str, float]] = []
    if kind == "health":
        for group in HEALTH_GROUPS:
            values = data.get(group)
            if isinstance(values, dict):
                out += [(f"{group}/{k}", v) for k, v in values.items() if _number(v)]
        return out
    params = data.get("params")
    left = MAX_WEIGHTS  # the first 24 values count, shown or not (a NaN keeps its place)
    for name, values in params.items() if isinstance(params, dict) else ():
        if not isinstance(values, list):
            continue
        if len(values) == 1:
            out += [(f"weight/{name}", values[0])] if _number(values[0]) else []
        else:
            out += [(f"weight/{name}[{i}]", v) for i, v in enumerate(values[:left]) if _number(v)]
        left -= len(values)
        if left <= 0:
            break
    return out


def capture(plain: dict[str, Any], encoded: dict[str, Any]) -> dict[str, Any]:
    """The encoded event, carrying the series of its plain data when it has any."""
    data = plain.get("data")
    if plain.get("type") in SNAPSHOT_SERIES and isinstance(data, dict):
        encoded[SERIES_KEY] = snapshot_values(plain["type"], data)
    return encoded


class Samples:
    """(series, step, value) samples in the order they were recorded, in numpy chunks."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str | list[str], np.ndarray, np.ndarray]] = []
        self._names: list[str] = []
        self._steps: list[int] = []
        self._values: list[float] = []

    def add(self, name: str, step: int, value: float) -> None:
        self._names.append(name)
        self._steps.append(step)
        self._values.append(value)

    def add_data(self, step: int, data: dict[str, Any], wanted: set[str] | None = None) -> None:
        """A metrics event's numbers (every key but epoch)."""
        for name, value in data.items() if isinstance(data, dict) else ():
            if name != "epoch" and _number(value) and (wanted is None or name in wanted):
                self.add(name, step, value)

    def add_array(self, name: str, steps: np.ndarray, values: np.ndarray) -> None:
        self._flush()  # keeps the recorded order
        finite = np.isfinite(values)
        if not finite.all():
            steps, values = steps[finite], values[finite]
        if len(steps):
            self.chunks.append((name, steps.astype(np.int64), values.astype(np.float64)))

    def _flush(self) -> None:
        if self._names:
            steps, values = np.array(self._steps, np.int64), np.array(self._values, np.float64)
            self.chunks.append((self._names, steps, values))
            self._names, self._steps, self._values = [], [], []

    def columns(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(names, name index, step, value) of every sample, in the recorded order."""
        self._flush()
        index: dict[str, int] = {}
        ids, steps, values = [], [], []
        for names, s, v in self.chunks:
            if isinstance(names, str):
                ids.append(np.full(len(s), index.setdefault(names, len(index)), np.int64))
            else:
                ids.append(np.array([index.setdefault(n, len(index)) for n in names], np.int64))
            steps.append(s)
            values.append(v)
        if not ids:
            empty = np.zeros(0, np.int64)
            return [], empty, empty, np.zeros(0)
        return list(index), np.concatenate(ids), np.concatenate(steps), np.concatenate(values)

    def by_name(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each series' (steps, values), in step order (recorded order at a tie)."""
        names, ids, steps, values = self.columns()
        order = np.lexsort((steps, ids))  # stable
        ids, steps, values = ids[order], steps[order], values[order]
        cuts = np.searchsorted(ids, np.arange(len(names) + 1))
        return {
            n: (steps[cuts[i] : cuts[i + 1]], values[cuts[i] : cuts[i + 1]])
            for i, n in enumerate(names)
        }


def add_metrics_row(
    samples: Samples, step: int, data: Any, n: int, wanted: set[str] | None
) -> None:
    """A metrics row's samples: a binary pack (PACK_DTYPE records), JSON text, or one event."""
    if n > 1 and isinstance(data, bytes):
        records = np.frombuffer(data, PACK_DTYPE, count=n)
        loss = records["epoch"] >= 0
        if wanted is None or "train_loss" in wanted:
            everything = loss.all()
            steps = records["step"] if everything else records["step"][loss]
            samples.add_array(
                "train_loss", steps, records["x"] if everything else records["x"][loss]
            )
        if not loss.all():  # an epoch's test figures among the steps: a JSON list after them
            others = json.loads(data[n * PACK_DTYPE.itemsize :])
            rest = records[~loss]
            for s, i in zip(rest["step"].tolist(), rest["x"].tolist(), strict=True):
                samples.add_data(s, others[int(i)], wanted)
    elif n > 1:  # a pack of JSON text, as the first version of schema 2 wrote them
        for s, _t, d in json.loads(data):
            samples.add_data(s, d, wanted)
    else:
        samples.add_data(step, json.loads(data) if isinstance(data, str | bytes) else data, wanted)


def add_snapshot_row(
    samples: Samples, kind: str, step: int, data: Any, wanted: set[str] | None
) -> None:
    """A health or weights event's samples."""
    plain = json.loads(data) if isinstance(data, str | bytes) else data
    for name, value in snapshot_values(kind, plain if isinstance(plain, dict) else {}):
        if wanted is None or name in wanted:
            samples.add(name, step, value)


def commit_samples(events: Iterable[dict[str, Any]]) -> Samples:
    """The samples of a commit's events, as pack_events hands them to the store."""
    samples = Samples()
    for e in events:
        kind = e["type"]
        if kind == "metrics":
            n = e.get("n", 1)
            add_metrics_row(
                samples, e.get("step", 0), e["pack"] if n > 1 else e.get("data", {}), n, None
            )
        elif kind in SNAPSHOT_SERIES:
            step = e.get("step", 0)
            if SERIES_KEY in e:  # captured by Store.encode before its data became JSON
                for name, value in e[SERIES_KEY]:
                    samples.add(name, step, value)
            else:
                add_snapshot_row(samples, kind, step, e.get("data", {}), None)
    return samples


def event_samples(
    conn: sqlite3.Connection,
    run_id: str,
    kind: str,
    lo: int | None = None,
    hi: int | None = None,
    wanted: set[str] | None = None,
    samples: Samples | None = None,
) -> Samples:
    """The samples of a run's events of one kind with steps in [lo, hi] (default: all)."""
    samples = Samples() if samples is None else samples
    lo = -(2**63) if lo is None else lo
    if kind == "metrics":
        # A pack row carries its last step: the rows from the first at or after lo, up to
        # and including the first past hi (its first steps may still be in range).
        sql = (
            "SELECT step, data, n FROM events WHERE run_id = ? AND type = 'metrics' "
            "AND step >= ? ORDER BY step, seq"
        )
        for step, data, n in conn.execute(sql, (run_id, lo)):
            add_metrics_row(samples, step, data, n, wanted)
            if hi is not None and step > hi:
                break
        return samples
    sql = "SELECT step, data FROM events WHERE run_id = ? AND type = ? AND step >= ?"
    params: list[Any] = [run_id, kind, lo]
    if hi is not None:
        sql += " AND step <= ?"
        params.append(hi)
    for step, data in conn.execute(sql + " ORDER BY step, seq", params):
        add_snapshot_row(samples, kind, step, data, wanted)
    return samples
