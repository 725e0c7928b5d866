"""Series summaries: for each level (a block size in steps), min/max blocks of every series.

For each group of series (the metrics, or the records' health and weights series), level
and block of steps that holds samples, a run has one series_blocks row: a BLOCK_DTYPE
record per series (its id in series_names) with the block's first (step, value), min, max,
last (step, value) and count. A row holds many series, so reading a stretch of history
costs about the same however many series a run has, and a commit writes about one row per
level and block it touches, in the transaction that appends its events, after its samples
are aggregated in numpy; only a block that an earlier commit began is read back and merged.
history.py reads them.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable

import numpy as np

from gradscope.server.store.series import KINDS, Samples, event_samples, kind_of

# Block sizes in steps, each 16x the last: a bucket of history is made of fewer than 16
# blocks of the coarsest level that fits in it, and the finest leaves under 256 raw steps
# at each end of a range. Few levels, as a commit reads back and merges the block it began
# at each level (a commit's other blocks are new). No level of 16: its rows (one per 16
# steps) were most of a commit's summary cost, and 256 raw steps read from a pack in
# microseconds (bench/history.py: +0.2 ms per 300-step commit, was +0.3).
LEVELS = (256, 4096, 65536)
FINEST, TOP = LEVELS[0], LEVELS[-1]
_SIZES = np.array(LEVELS, np.int64)
# A row holds the series of one group: the metrics (a commit of steps alone rewrites these
# few), or the health and weights series of the records (many, and written together).
GROUPS = ("metrics", "records")
# One series in one block: a row's blob is an array of these, by id.
BLOCK_DTYPE = np.dtype(
    [
        ("id", "<i4"),
        ("count", "<i4"),
        ("first_step", "<i8"),
        ("last_step", "<i8"),
        ("first", "<f8"),
        ("min", "<f8"),
        ("max", "<f8"),
        ("last", "<f8"),
    ]
)


def group_of(name: str) -> str:
    """The group of blocks a series is kept in (GROUPS)."""
    return GROUPS[0] if kind_of(name) == KINDS[0] else GROUPS[1]


def aggregate(samples: Samples) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(names, levels, blocks, records): one BLOCK_DTYPE record (its id an index into names)
    per level, block and series that the samples touch."""
    names, ids, steps, values = samples.columns()
    count = len(steps)
    if not count:
        empty = np.zeros(0, np.int64)
        return [], empty, empty, np.zeros(0, BLOCK_DTYPE)
    order = np.lexsort((steps, ids))  # by series, then step; stable: a tie keeps its order
    ids, steps, values = ids[order], steps[order], values[order]
    # Every level at once (a row of the grid each), so a commit costs a few numpy calls.
    blocks = steps[None, :] // _SIZES[:, None]
    change = np.ones(blocks.shape, bool)
    change[:, 1:] = (ids[1:] != ids[:-1]) | (blocks[:, 1:] != blocks[:, :-1])
    starts = np.flatnonzero(change)  # a level's row starts with a change: no group spans two
    ends = np.append(starts[1:], blocks.size) - 1
    tiled = np.tile(values, len(LEVELS))
    first, last = starts % count, ends % count
    out = np.empty(len(starts), BLOCK_DTYPE)
    out["id"], out["count"] = ids[first], ends - starts + 1
    out["first_step"], out["last_step"] = steps[first], steps[last]
    out["first"], out["last"] = values[first], values[last]
    out["min"] = np.minimum.reduceat(tiled, starts)
    out["max"] = np.maximum.reduceat(tiled, starts)
    return names, _SIZES[starts // count], blocks.ravel()[starts], out


def _fold(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Records of the same series in one block (old, then new) as one record each."""
    out = old.copy()
    out["count"] = old["count"] + new["count"]
    earlier = new["first_step"] < old["first_step"]  # the first: the earlier, old at a tie
    out["first_step"] = np.where(earlier, new["first_step"], old["first_step"])
    out["first"] = np.where(earlier, new["first"], old["first"])
    later = new["last_step"] >= old["last_step"]  # the last: the later, new at a tie
    out["last_step"] = np.where(later, new["last_step"], old["last_step"])
    out["last"] = np.where(later, new["last"], old["last"])
    out["min"] = np.minimum(old["min"], new["min"])
    out["max"] = np.maximum(old["max"], new["max"])
    return out


def _merge(stored: bytes, new: np.ndarray) -> bytes:
    """A stored block's records (by id) with a commit's for the same block folded in."""
    old = np.frombuffer(stored, BLOCK_DTYPE)
    if len(new) <= 8:  # a commit of steps alone: plain Python is quicker than numpy calls
        merged = {r[0]: r for r in old.tolist()}
        for r in new.tolist():  # (id, count, first_step, last_step, first, min, max, last)
            o = merged.get(r[0])
            merged[r[0]] = (
                r
                if o is None
                else (
                    r[0],
                    o[1] + r[1],
                    min(o[2], r[2]),
                    max(o[3], r[3]),
                    r[4] if r[2] < o[2] else o[4],  # the first: the earlier, old at a tie
                    min(o[5], r[5]),
                    max(o[6], r[6]),
                    r[7] if r[3] >= o[3] else o[7],  # the last: the later, new at a tie
                )
            )
        return np.array(sorted(merged.values()), BLOCK_DTYPE).tobytes()
    if len(old) == len(new) and np.array_equal(old["id"], new["id"]):
        return _fold(old, new).tobytes()  # the same series again: the usual record
    at = np.searchsorted(old["id"], new["id"])
    found = at < len(old)
    found[found] = old["id"][at[found]] == new["id"][found]
    out = old.copy()
    out[at[found]] = _fold(old[at[found]], new[found])
    if not found.all():
        out = np.concatenate([out, new[~found]])
        out = out[np.argsort(out["id"], kind="stable")]
    return out.tobytes()


def series_ids(
    conn: sqlite3.Connection, run_id: str, names: list[str], known: dict[str, int]
) -> list[int]:
    """The run's id of each name, new names given the next ids (`known`: a cache, updated)."""
    if any(n not in known for n in names):
        sql = "SELECT name, id FROM series_names WHERE run_id = ?"
        known.update(conn.execute(sql, (run_id,)).fetchall())
        new = [n for n in dict.fromkeys(names) if n not in known]
        start = max(known.values(), default=-1) + 1
        rows = [(run_id, start + i, n) for i, n in enumerate(new)]
        conn.executemany("INSERT INTO series_names (run_id, id, name) VALUES (?, ?, ?)", rows)
        known.update((n, i) for _, i, n in rows)
    return [known[n] for n in names]


def write(
    conn: sqlite3.Connection,
    run_id: str,
    blocks: tuple[list[str], np.ndarray, np.ndarray, np.ndarray],
    known: dict[str, int],
) -> None:
    """Fold aggregated records into the run's blocks (inside the commit's transaction)."""
    names, levels, block, records = blocks
    if not names:
        return
    ids = np.array(series_ids(conn, run_id, names, known), np.int32)
    group = np.array([GROUPS.index(group_of(n)) for n in names])[records["id"]]
    records["id"] = ids[records["id"]]
    order = np.lexsort((records["id"], block, levels, group))  # a blob's records by id
    group, levels, block, records = group[order], levels[order], block[order], records[order]
    stored: dict[tuple[int, int, int], bytes] = {}
    sql = (
        "SELECT level, block, stats FROM series_blocks "
        "WHERE run_id = ? AND kind = ? AND level = ? AND block BETWEEN ? AND ?"
    )
    cuts = np.flatnonzero(np.diff(group) | np.diff(levels)) + 1
    for lo, hi in itertools.pairwise([0, *cuts.tolist(), len(group)]):
        g, size = int(group[lo]), int(levels[lo])
        span = (run_id, GROUPS[g], size, int(block[lo]), int(block[hi - 1]))
        for lv, b, blob in conn.execute(sql, span):
            stored[(g, lv, b)] = blob
    cuts = (np.flatnonzero(np.diff(group) | np.diff(levels) | np.diff(block)) + 1).tolist()
    keys = zip(group[[0, *cuts]].tolist(), levels[[0, *cuts]].tolist(), block[[0, *cuts]].tolist())
    raw, size = records.tobytes(), BLOCK_DTYPE.itemsize
    rows = []
    for key, (lo, hi) in zip(keys, itertools.pairwise([0, *cuts, len(records)]), strict=True):
        old = stored.get(key)
        blob = raw[lo * size : hi * size] if old is None else _merge(old, records[lo:hi])
        rows.append((run_id, GROUPS[key[0]], key[1], key[2], blob))
    sql = "INSERT OR REPLACE INTO series_blocks (run_id, kind, level, block, stats) VALUES "
    conn.executemany(sql + "(?, ?, ?, ?, ?)", rows)


def pending(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the run was written before series_blocks existed and awaits its rebuild."""
    sql = "SELECT 1 FROM series_pending WHERE run_id = ?"
    return conn.execute(sql, (run_id,)).fetchone() is not None


def rebuild(conn: sqlite3.Connection, run_id: str, known: dict[str, int]) -> None:
    """Build a pending run's blocks from its events (in the caller's write transaction)."""
    if not pending(conn, run_id):
        return  # another process did it while we waited for the write lock
    conn.execute("DELETE FROM series_blocks WHERE run_id = ?", (run_id,))
    samples = Samples()
    for kind in KINDS:
        event_samples(conn, run_id, kind, samples=samples)
    write(conn, run_id, aggregate(samples), known)
    conn.execute("DELETE FROM series_pending WHERE run_id = ?", (run_id,))


def delete(conn: sqlite3.Connection, run_id: str) -> None:
    """Forget a run's series."""
    for table in ("series_blocks", "series_names", "series_pending"):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))


def names(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """The run's series and their ids, by name."""
    sql = "SELECT name, id FROM series_names WHERE run_id = ? ORDER BY name"
    return dict(conn.execute(sql, (run_id,)).fetchall())


def stats(
    conn: sqlite3.Connection,
    run_id: str,
    level: int,
    lo: int | None = None,
    hi: int | None = None,
    groups: Iterable[str] = GROUPS,
) -> np.ndarray:
    """The BLOCK_DTYPE records of one level's blocks lo..hi (default: all) of these groups."""
    sql = "SELECT stats FROM series_blocks WHERE run_id = ? AND kind = ? AND level = ?"
    if lo is not None and hi is not None:
        sql += " AND block BETWEEN ? AND ?"
    bounds = () if lo is None or hi is None else (lo, hi)
    blobs = [b for g in groups for (b,) in conn.execute(sql, (run_id, g, level, *bounds))]
    return np.frombuffer(b"".join(blobs), BLOCK_DTYPE)
