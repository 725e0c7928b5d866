"""A fork's lineage: its steps up to its fork step are its parent's, read through, never copied.

A run forked from P at step s (runs.parent_id, runs.fork_step) stores only what it made
from s on: its starting frame at s, then its own steps. Its reads go through its lineage,
the segments (run, first, last) from the root: the root's steps 0..s1, a fork's s1..s2, ...,
the run's own from its fork step (last None: open). At a fork step the parent's record is the
shared one (its frame, its health and weights there); a fork's own frame at s shows only
where its parent recorded none at s.
"""

from __future__ import annotations

import sqlite3

from gradscope.server.runs.events import FRAME_TYPES, SNAPSHOT_TYPES
from gradscope.server.store.encoding import events_from_row

Segment = tuple[str, int, int | None]  # run id, its first step, its last (None: open)
# Ancestors followed at most (a corrupt file could hold a loop; a real lineage is short).
MAX_DEPTH = 10_000


def segments(conn: sqlite3.Connection, run_id: str) -> list[Segment]:
    """The run's lineage, root first; [(run_id, 0, None)] for a run that is no fork (none
    for an unknown run)."""
    out: list[Segment] = []
    current: str | None = run_id
    end: int | None = None
    sql = "SELECT parent_id, fork_step FROM runs WHERE id = ?"
    for _ in range(MAX_DEPTH):
        row = conn.execute(sql, (current,)).fetchone()
        if row is None:
            break
        parent, fork = row
        first = int(fork) if parent is not None and fork is not None else 0
        if end is None or first <= end:  # a fork of a fork, earlier than its fork step: skip it
            out.append((current, first, end))  # type: ignore[arg-type]
        if parent is None or fork is None:
            break
        end = first if end is None else min(end, first)
        current = parent
    return out[::-1]


def latest(conn: sqlite3.Connection, run_id: str, kind: str, at: int | None) -> dict | None:
    """The run's own event of this type with the greatest step <= at (ties: the latest seq);
    of a packed row, its last event (snapshot types are never packed)."""
    sql = "SELECT seq, type, step, t, data, n FROM events WHERE run_id = ? AND type = ?"
    bound = () if at is None else (at,)
    sql += "" if at is None else " AND step <= ?"
    row = conn.execute(sql + " ORDER BY step DESC, seq DESC LIMIT 1", (run_id, kind, *bound))
    found = row.fetchone()
    return None if found is None else events_from_row(found)[-1]


def _bound(at: int | None, last: int | None) -> int | None:
    """The greatest step to read in a segment ending at `last`, as of `at` (None: no bound)."""
    if at is None:
        return last
    return at if last is None else min(at, last)


def latest_in(
    conn: sqlite3.Connection, segs: list[Segment], kind: str, at: int | None, own_tie: bool = False
) -> tuple[int, dict] | None:
    """(segment index, event): the event of this type with the greatest step <= at through
    the lineage; at a fork step the parent's (`own_tie`: the last segment's own)."""
    top = len(segs) - 1
    for i in range(top, -1, -1):
        run_id, first, last = segs[i]
        if i and at is not None and (at < first or (at == first and not (own_tie and i == top))):
            continue  # the shared state at the fork step is the parent's
        e = latest(conn, run_id, kind, _bound(at, last))
        if e is not None:
            return i, e
    return None


def _frame_step(
    conn: sqlite3.Connection, run_id: str, at: int | None, after: int | None, upto: int | None
) -> int | None:
    """The run's greatest frame step <= at, or its smallest > after (and <= upto)."""
    if after is not None:
        sql = "SELECT min(step) FROM events WHERE run_id = ? AND type = ? AND step > ?"
        bound: tuple[int, ...] = (after,)
        if upto is not None:
            sql, bound = sql + " AND step <= ?", (after, upto)
        found = [conn.execute(sql, (run_id, k, *bound)).fetchone()[0] for k in FRAME_TYPES]
        steps = [s for s in found if s is not None]
        return min(steps) if steps else None
    sql = "SELECT max(step) FROM events WHERE run_id = ? AND type = ?"
    bound = () if at is None else (at,)
    sql += "" if at is None else " AND step <= ?"
    found = [conn.execute(sql, (run_id, k, *bound)).fetchone()[0] for k in FRAME_TYPES]
    steps = [s for s in found if s is not None]
    return max(steps) if steps else None


def _frame_at(
    conn: sqlite3.Connection, segs: list[Segment], at: int | None
) -> tuple[int, int] | None:
    """(segment index, step) of the greatest frame step <= at (None: the last)."""
    for i in range(len(segs) - 1, -1, -1):
        run_id, first, last = segs[i]
        if i and at is not None and at <= first:
            continue
        step = _frame_step(conn, run_id, _bound(at, last), None, None)
        if step is None:
            continue
        if i and step <= first:  # its starting frame: the parent's, where it has one there
            older = _frame_at(conn, segs[:i], first)
            return older if older is not None and older[1] == first else (i, step)
        return i, step
    return None


def read_frame(
    conn: sqlite3.Connection, segs: list[Segment], at: int | None, after: int | None
) -> dict | None:
    """{"step", "events"}: the frame at the greatest frame step <= at (default: the last), or
    the smallest > after, through the lineage; each snapshot type's latest event at or
    before it, ancestors' first, then in seq order."""
    found: tuple[int, int] | None = None
    if after is not None:
        for i, (run_id, _, last) in enumerate(segs):
            step = _frame_step(conn, run_id, None, after, last)
            if step is not None:
                found = (i, step)
                break
    else:
        found = _frame_at(conn, segs, at)
    if found is None:
        return None
    i, step = found
    events = [
        e for kind in SNAPSHOT_TYPES if (e := latest_in(conn, segs[: i + 1], kind, step, True))
    ]
    events.sort(key=lambda e: (e[0], e[1]["seq"]))
    return {"step": step, "events": [e for _, e in events]}


def history_spans(segs: list[Segment]) -> list[tuple[str, int, int | None]]:
    """(run id, first step, last step) each run of the lineage gives its history: a fork's
    own steps are those after its fork step."""
    return [(run_id, first + 1 if i else 0, last) for i, (run_id, first, last) in enumerate(segs)]
