"""A run's summary: the final and best value of each loss and accuracy metric it records.

Kept in the run's row (`summary`, JSON) as its metrics are committed, from the same
per-commit aggregates the series blocks are made of (blocks.aggregate), so the run list and
the run table show final and best figures without reading any history. A metric's entry is
{"final": its last value, "step": the step of that value, "best": its least (losses) or
greatest (accuracies) value}; non-finite values are not samples, as in the series.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np

from gradscope.server.store import blocks

# Each summarised metric and which way is better.
BEST = {"train_loss": min, "test_loss": min, "train_acc": max, "test_acc": max}
Figures = dict[str, dict[str, Any]]


def _fold(into: Figures, name: str, final: float, step: int, best: float) -> None:
    """One more piece of a metric's summary (a later or equal step's final wins)."""
    old = into.get(name)
    if old is None:
        into[name] = {"final": final, "step": step, "best": best}
        return
    old["best"] = BEST[name](old["best"], best)
    if step >= old["step"]:
        old["final"], old["step"] = final, step


def from_records(records: np.ndarray, name_of: Callable[[int], str]) -> Figures:
    """The summary of blocks.BLOCK_DTYPE records of one level (ids named by `name_of`)."""
    out: Figures = {}
    for sid, _, _, last_step, _, low, high, last in records.tolist():
        name = name_of(sid)
        if name in BEST:
            _fold(out, name, last, last_step, low if BEST[name] is min else high)
    return out


def of_commit(aggregated: tuple[list[str], np.ndarray, np.ndarray, np.ndarray]) -> Figures:
    """The summary of one commit's samples (blocks.aggregate's output, before blocks.write)."""
    names, levels, _, records = aggregated
    if not any(n in BEST for n in names):
        return {}
    return from_records(records[levels == blocks.TOP], names.__getitem__)


def merge(old: Figures, new: Figures) -> Figures:
    """A stored summary with a commit's folded in."""
    out = {name: dict(entry) for name, entry in old.items()}
    for name, entry in new.items():
        _fold(out, name, entry["final"], entry["step"], entry["best"])
    return out


def from_blocks(conn: sqlite3.Connection, run_id: str) -> Figures:
    """A run's summary from its stored blocks (for runs written before summaries)."""
    ids = {i: n for n, i in blocks.names(conn, run_id).items()}
    records = blocks.stats(conn, run_id, blocks.TOP, groups=(blocks.GROUPS[0],))
    return from_records(records, lambda i: ids.get(i, ""))


def fill(conn: sqlite3.Connection, run_id: str | None = None) -> None:
    """Write the summary of runs that have none (all such runs, or the one named) from their
    blocks; a run still waiting for its blocks (series_pending) gets its own at its rebuild."""
    sql = "SELECT id FROM runs WHERE summary = '{}' AND last_seq > 0"
    sql += " AND id NOT IN (SELECT run_id FROM series_pending)"
    ids = [r for (r,) in conn.execute(sql)] if run_id is None else [run_id]
    for rid in ids:
        figures = from_blocks(conn, rid)
        if figures:
            conn.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(figures), rid))
