"""History at any length, read from the series blocks (blocks.py), and frames.

`read_history` splits the steps from..to into at most `points` buckets and gives each
series' first step, min, max and last value in every bucket that holds a sample (M4). The
buckets are exact at any zoom: a bucket takes whole blocks of the coarsest level not wider
than it (no block is split); the range's cut ends are whole blocks of finer levels, then
fewer than FINEST (256) steps of raw values; a narrow range (under FINEST steps a bucket)
is read raw.
So bucket i holds exactly the samples from its first step to the next bucket's. Raw values
come from the finest blocks where a block holds at most two samples (its first and last
are them), else from the events rows: packed metrics with numpy, health and weights JSON.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable
from typing import Any

import numpy as np

from gradscope.server.runs.events import SNAPSHOT_TYPES
from gradscope.server.store import blocks, series, summary
from gradscope.server.store.blocks import FINEST, LEVELS, TOP
from gradscope.server.store.lineage import (
    Segment,
    history_spans,
    latest,
    latest_in,
    read_frame,
    segments,
)
from gradscope.server.store.schema import check_run_id


def plan(s0: int, s1: int, points: int) -> tuple[int, int]:
    """(width, level): buckets `width` steps apart, each made of whole blocks of `level`
    steps (the coarsest level not wider than a bucket; 1: raw values)."""
    width = -(-(s1 - s0 + 1) // points)  # the narrowest that makes at most `points`
    return width, max((size for size in LEVELS if size <= width), default=1)


def decompose(a: int, b: int, levels: tuple[int, ...]) -> tuple[list[tuple], list[tuple]]:
    """Steps a..b as ranges of whole blocks ([(level, first block, last block)], the
    coarsest in the middle) and raw step ranges ([(a, b)], under FINEST steps each) at the
    ends."""
    if a > b:
        return [], []
    if not levels:
        return [], [(a, b)]
    size = levels[-1]
    lo, hi = -(-a // size), (b + 1) // size - 1
    if lo > hi:
        return decompose(a, b, levels[:-1])
    left_blocks, left_raw = decompose(a, lo * size - 1, levels[:-1])
    right_blocks, right_raw = decompose((hi + 1) * size, b, levels[:-1])
    return [*left_blocks, (size, lo, hi), *right_blocks], [*left_raw, *right_raw]


Columns = tuple[np.ndarray, np.ndarray, np.ndarray]  # (series id, step, value)


def _cat(parts: list[Columns]) -> Columns:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]


def raw_samples(
    conn: sqlite3.Connection, run_id: str, ids: dict[str, int], a: int, b: int
) -> Columns:
    """Every sample of the series (name -> id) with a step in a..b, by series and step."""
    groups = {blocks.group_of(n) for n in ids}
    st = blocks.stats(conn, run_id, FINEST, a // FINEST, b // FINEST, groups)
    st = st[np.isin(st["id"], list(ids.values()))]
    small, many = st[st["count"] <= 2], st[st["count"] > 2]
    two = small[small["count"] == 2]  # a block of one or two samples: its first and last
    parts: list[Columns] = [
        (small["id"], small["first_step"], small["first"]),
        (two["id"], two["last_step"], two["last"]),
    ]
    if len(many):  # the other blocks' samples, from the events
        name_of = {i: n for n, i in ids.items()}
        base, span = a // FINEST, b // FINEST - a // FINEST + 1
        keys = many["id"].astype(np.int64) * span + many["first_step"] // FINEST - base
        for kind in ("metrics", *series.SNAPSHOT_SERIES):
            rows = many[[series.kind_of(name_of[i]) == kind for i in many["id"].tolist()]]
            if not len(rows):
                continue
            lo = max(a, int(rows["first_step"].min()) // FINEST * FINEST)
            hi = min(b, int(rows["last_step"].max()))
            wanted = {name_of[i] for i in rows["id"].tolist()}
            names, index, steps, values = series.event_samples(
                conn, run_id, kind, lo, hi, wanted
            ).columns()
            sid = np.array([ids[n] for n in names], np.int64)[index] if names else index
            key = sid * span + steps // FINEST - base
            keep = (steps >= a) & (steps <= b) & np.isin(key, keys)
            parts.append((sid[keep], steps[keep], values[keep]))
    sid, steps, values = _cat(parts)
    keep = (steps >= a) & (steps <= b)
    sid, steps, values = sid[keep], steps[keep], values[keep]
    order = np.lexsort((steps, sid))  # stable: samples at one step keep their order
    return sid[order], steps[order], values[order]


def full_range(conn: sqlite3.Connection, run_id: str) -> tuple[int | None, int | None]:
    """The first and last step of any sample of the run."""
    top = blocks.stats(conn, run_id, TOP)
    if not len(top):
        return None, None
    return int(top["first_step"].min()), int(top["last_step"].max())


Span = tuple[str, int, int | None]  # a run, and the steps (first, last; None: open) it gives


def _span_range(conn: sqlite3.Connection, spans: list[Span]) -> tuple[int | None, int | None]:
    """The first and last step of any sample the spans give."""
    firsts, lasts = [], []
    for run_id, lo, hi in spans:
        first, last = full_range(conn, run_id)
        if first is None or last is None:
            continue
        first, last = max(first, lo), last if hi is None else min(last, hi)
        if first <= last:
            firsts.append(first)
            lasts.append(last)
    return min(firsts, default=None), max(lasts, default=None)


def _pieces(
    conn: sqlite3.Connection, run_id: str, ids: dict[str, int], a: int, b: int, level: int
) -> tuple[np.ndarray, ...]:
    """(series id, step, min, max, last) of the whole blocks (of `level` and finer) and
    raw samples that make up steps a..b of a run."""
    ranges, ends = decompose(a, b, tuple(size for size in LEVELS if size <= level))
    groups = {blocks.group_of(n) for n in ids}
    parts = [blocks.stats(conn, run_id, size, lo, hi, groups) for size, lo, hi in ranges]
    found = np.concatenate(parts) if parts else np.zeros(0, blocks.BLOCK_DTYPE)
    found = found[np.isin(found["id"], list(ids.values()))]
    rid, rstep, rvalue = _cat([raw_samples(conn, run_id, ids, lo, hi) for lo, hi in ends])
    # Pieces: the blocks, and each raw sample as a block of one.
    return (
        np.concatenate([found["id"], rid]),
        np.concatenate([found["first_step"], rstep]),
        np.concatenate([found["min"], rvalue]),
        np.concatenate([found["max"], rvalue]),
        np.concatenate([found["last"], rvalue]),
    )


def read_history(
    conn: sqlite3.Connection,
    spans: list[Span],
    names: Iterable[str] | None,
    start: int | None,
    end: int | None,
    points: int,
) -> dict[str, Any]:
    """{"from", "to", "points", "series": {name: {"step", "min", "max", "last"}}} of the
    steps each run of `spans` gives (one run: [(run_id, 0, None)]; a fork's lineage.py)."""
    own = [blocks.names(conn, run_id) for run_id, _, _ in spans]
    asked = None if names is None else set(names)
    every = sorted({n for ids in own for n in ids if asked is None or n in asked})
    index = {n: k for k, n in enumerate(every)}  # one id per name across the runs
    first, last = _span_range(conn, spans)
    s0 = start if start is not None else (first if first is not None else 0)
    s1 = end if end is not None else max(s0, last if last is not None else s0)
    out: dict[str, Any] = {"from": s0, "to": s1, "points": points, "series": {}}
    if not every or s1 < s0:
        return out
    width, level = plan(s0, s1, points)
    pieces = []
    for (run_id, lo, hi), ids in zip(spans, own):
        ids = {n: i for n, i in ids.items() if n in index}
        a, b = max(s0, lo), s1 if hi is None else min(s1, hi)
        if a > b or not ids:
            continue
        sid, *rest = _pieces(conn, run_id, ids, a, b, level)
        to_index = np.zeros(max(ids.values()) + 1, np.int64)
        to_index[list(ids.values())] = [index[n] for n in ids]
        pieces.append((to_index[sid.astype(np.int64)], *rest))
    if not pieces:
        return out
    sid, step, low, high, final = (np.concatenate([p[k] for p in pieces]) for k in range(5))
    order = np.lexsort((step, sid))  # stable: raw samples at one step keep their order
    sid, step, low, high, final = sid[order], step[order], low[order], high[order], final[order]
    # A bucket takes the level blocks that start in it (the first: the one cut by s0), so
    # no block is split and every bucket is exact.
    bucket = np.maximum(step // level * level - s0, 0) // width
    change = np.ones(len(sid), bool)
    change[1:] = (sid[1:] != sid[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(change)
    if not len(starts):
        return out
    stops = np.append(starts[1:], len(sid)) - 1
    columns = {
        "step": step[starts].tolist(),
        "min": np.minimum.reduceat(low, starts).tolist(),
        "max": np.maximum.reduceat(high, starts).tolist(),
        "last": final[stops].tolist(),
    }
    owner = sid[starts]
    cuts = [0, *(np.flatnonzero(owner[1:] != owner[:-1]) + 1).tolist(), len(owner)]
    by_id = {int(owner[c]): (c, d) for c, d in itertools.pairwise(cuts)}
    for name, i in index.items():  # sorted by name
        if i in by_id:
            c, d = by_id[i]
            out["series"][name] = {k: v[c:d] for k, v in columns.items()}
    return out


class HistoryReads:
    """Store's history and frame reads (Store provides _locked and _tx); a fork's read
    through its lineage (lineage.py): its parent's steps up to its fork step, then its own."""

    _locked: Any
    _tx: Any
    _series_ids: dict[str, dict[str, int]]

    def lineage(self, run_id: str) -> list[Segment]:
        """The run's lineage, root first: [(run id, first step, last step or None)]."""
        check_run_id(run_id)
        with self._locked() as conn:
            return segments(conn, run_id)

    def forks_of(self, run_id: str) -> list[str]:
        """The ids of the runs forked from this one."""
        check_run_id(run_id)
        with self._locked() as conn:
            rows = conn.execute("SELECT id FROM runs WHERE parent_id = ?", (run_id,)).fetchall()
        return [r[0] for r in rows]

    def history(
        self,
        run_id: str,
        names: Iterable[str] | None = None,
        start: int | None = None,
        end: int | None = None,
        points: int = 1000,
    ) -> dict[str, Any]:
        """Series over steps start..end (default: all) as at most `points` exact min/max
        buckets each; a run written before the blocks has them built first (once)."""
        for run_id_, _, _ in self.lineage(run_id) or [(run_id, 0, None)]:
            with self._locked() as conn:
                stale = blocks.pending(conn, run_id_)
            if stale:
                with self._tx() as conn:
                    blocks.rebuild(conn, run_id_, self._series_ids.setdefault(run_id_, {}))
                    summary.fill(conn, run_id_)  # its final and best figures, from the blocks
        with self._tx("DEFERRED") as conn:  # one snapshot for every read
            spans = history_spans(segments(conn, run_id)) or [(run_id, 0, None)]
            return read_history(conn, spans, names, start, end, int(points))

    def metric_times(self, run_id: str) -> np.ndarray:
        """(step, t) of each metrics row, by step: when a commit's last step was done (the
        compare page's time axis interpolates between them)."""
        check_run_id(run_id)
        sql = "SELECT step, t FROM events WHERE run_id = ? AND type = 'metrics' AND step >= ?"
        rows = []
        with self._locked() as conn:
            for run_id_, lo, hi in history_spans(segments(conn, run_id)):
                bound = (run_id_, lo) if hi is None else (run_id_, lo, hi)
                rows += conn.execute(sql + ("" if hi is None else " AND step <= ?"), bound)
        return np.array(sorted(rows), float).reshape(-1, 2)

    def series_names(self, run_id: str) -> list[str]:
        """The run's series (through its lineage), sorted."""
        check_run_id(run_id)
        self.history(run_id, names=())  # builds the blocks of a run from before them
        with self._locked() as conn:
            runs = [r for r, _, _ in segments(conn, run_id)]
            return sorted({n for r in runs for n in blocks.names(conn, r)})

    def latest_event(self, run_id: str, type: str, at_step: int | None = None) -> dict | None:
        """The event of this type with the greatest step <= at_step (ties: the latest seq);
        a snapshot type's through the lineage (a fork's checkpoints are its own).

        Meant for snapshot types, which are never packed (of a packed row: its last event).
        """
        check_run_id(run_id)
        at = None if at_step is None else int(at_step)
        with self._locked() as conn:
            if type not in SNAPSHOT_TYPES:
                return latest(conn, run_id, type, at)
            found = latest_in(conn, segments(conn, run_id), type, at)
            return None if found is None else found[1]

    def frame(self, run_id: str, at: int | None = None, after: int | None = None) -> dict | None:
        """{"step", "events"}: every snapshot type's latest event at the frame step <= at (or
        the first > after); None when there is none. Indexed reads only."""
        check_run_id(run_id)
        with self._tx("DEFERRED") as conn:
            return read_frame(conn, segments(conn, run_id), at, after)
