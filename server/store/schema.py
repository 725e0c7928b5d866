"""The store's schema: run states, migrations, the run record, JSON and error helpers."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import numpy as np

RUN_STATES = (
    "queued",
    "running",
    "paused",
    "finished",
    "stopped",
    "failed",
    "crashed",
    "interrupted",
)
ACTIVE_STATES = {"queued", "running", "paused"}
FINAL_STATES = {"finished", "stopped", "failed"}
RESUMABLE_STATES = {"paused", "crashed", "interrupted"}
ERROR_STATES = {"failed", "crashed"}
SOURCES = ("server", "cli")
DB_NAME = "gradscope.db"
INTERRUPTED_MESSAGE = "the server stopped while this run was active"

# Each entry moves the schema up one version (PRAGMA user_version); never edit a shipped one.
MIGRATIONS = [
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, preset TEXT, config TEXT NOT NULL,
        state TEXT NOT NULL, source TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,
        epoch INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL, started_at REAL, finished_at REAL, updated_at REAL NOT NULL,
        error TEXT, error_op TEXT, traceback TEXT, pid INTEGER, checkpoint TEXT,
        checkpoint_step INTEGER, last_seq INTEGER NOT NULL DEFAULT 0,
        changed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_changed ON runs (changed);
    CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, seq INTEGER NOT NULL,
        type TEXT NOT NULL, step INTEGER NOT NULL, t REAL, data TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_type_step ON events (run_id, type, step);
    CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), counter INTEGER NOT NULL);
    INSERT INTO meta (id, counter) VALUES (1, 0);
    CREATE TABLE deleted_runs (id TEXT PRIMARY KEY, changed INTEGER NOT NULL);
    CREATE INDEX deleted_runs_changed ON deleted_runs (changed);
    """,
    # A row may pack n consecutive events of one type (the per-step losses of one commit):
    # its seq is the last of them and data a JSON array of [step, t, data] per event.
    """
    ALTER TABLE events ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
    """,
]

# WAL: readers never block the one writer; NORMAL sync is durable enough for WAL (may lose the
# last commits on power loss, never corrupts); busy_timeout waits out other processes' writes.
PRAGMAS = (
    "busy_timeout = 10000",
    "journal_mode = WAL",
    "synchronous = NORMAL",
    "foreign_keys = ON",
)


def retry_locked(action: Callable[[], object], seconds: float = 10.0) -> None:
    """Run action, retrying while the file is locked: switching a new file to WAL does not
    wait on the busy handler when other processes open it at the same moment."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_RUN_ID = re.compile(r"^[0-9a-f]{12}$")


@dataclass
class RunRecord:
    """One row of the runs table."""

    id: str
    name: str
    preset: str | None
    config: dict
    state: str
    source: str
    step: int
    epoch: int
    total_steps: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    error: str | None
    error_op: str | None
    traceback: str | None
    pid: int | None
    checkpoint: str | None
    checkpoint_step: int | None
    last_seq: int

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)


COLUMNS = tuple(f.name for f in dataclass_fields(RunRecord))
SELECT_RUN = f"SELECT {', '.join(COLUMNS)} FROM runs"
# state goes through set_state (it writes the state event); the rest is the store's bookkeeping.
UPDATABLE = frozenset(COLUMNS) - {"id", "state", "created_at", "updated_at", "last_seq"}


class StoreError(RuntimeError):
    """The database cannot be used: disk full, read-only, corrupt, or from a newer Gradscope."""


def check_run_id(run_id: str) -> str:
    """Return run_id if it has our shape (12 hex digits); paths are built from it."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


def _sanitize(value: Any) -> Any:
    """Replace NaN/Inf floats with the strings "nan"/"inf"/"-inf", recursively."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitize(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _sanitize(value.tolist())
    return value


def _tolist(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class RawJSON(str):
    """A value already encoded as JSON text; to_json passes it through as it is."""


# A packed row's per-event record: step, wall time, epoch (or -1: another metrics event,
# whose data is the item `index` of the JSON list after the records), loss (or index).
PACK_DTYPE = np.dtype([("step", "<i8"), ("t", "<f8"), ("epoch", "<i8"), ("x", "<f8")])


def pack_losses(
    steps: list[tuple[int, float, int, float]], others: list[Any] | None = None
) -> dict[str, Any]:
    """One packed metrics event for consecutive metrics events of one commit.

    An entry is a per-step (step, t, epoch, loss), or (step, t, -1, i) for another metrics
    event (an epoch's test figures) whose data is others[i], so a small set's 13-step
    epochs do not cut the pack. The store writes it as one row, binary (PACK_DTYPE records,
    then the others as JSON), that reads back as the events in order: a row per event, or
    a JSON text per step, cost the training process as much as a small net's step.
    """
    if len(steps) == 1:  # a lone event is stored as the plain event it is
        s, t, e, x = steps[0]
        data = others[int(x)] if e < 0 and others else loss_json(e, x)
        return {"type": "metrics", "step": s, "t": t, "data": data}
    blob = np.array(steps, dtype=PACK_DTYPE).tobytes()
    if others:
        blob += to_json(others).encode()
    last = steps[-1]
    return {"type": "metrics", "step": last[0], "t": last[1], "n": len(steps), "pack": blob}


def _unpack(data: bytes | str, n: int) -> list[tuple[int, float, Any]]:
    """A packed row's (step, t, data) triples: binary (PACK_DTYPE), or JSON from before."""
    if isinstance(data, str):  # packs of JSON text, as the first version of v2 wrote them
        return [tuple(x) for x in json.loads(data)]
    size = n * PACK_DTYPE.itemsize
    others = json.loads(data[size:]) if len(data) > size else []
    isfinite, out = math.isfinite, []
    for step, t, epoch, x in np.frombuffer(data, PACK_DTYPE, count=n).tolist():
        if epoch < 0:
            out.append((step, t, others[int(x)]))
        else:
            loss = x if isfinite(x) else json_float_text(x)
            out.append((step, t, {"epoch": epoch, "train_loss": loss}))
    return out


def loss_json(epoch: int, loss: float) -> RawJSON:
    """A per-step metrics event's data, formatted directly: the one event every step makes.

    repr(float) is what json.dumps writes for a finite float; non-finite ones become strings.
    """
    loss = float(loss)
    text = repr(loss) if math.isfinite(loss) else f'"{json_float_text(loss)}"'
    return RawJSON(f'{{"epoch":{epoch},"train_loss":{text}}}')


def json_float_text(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def to_json(value: Any) -> str:
    """Compact JSON; NaN/Inf become strings (the fast path pays nothing when there are none)."""
    if isinstance(value, RawJSON):
        return value
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), default=_tolist)
    except ValueError:
        return json.dumps(_sanitize(value), allow_nan=False, separators=(",", ":"))


_WHY = (  # (fragments of sqlite's message, what to tell the user)
    (("full",), "the disk is full (or the database reached its size limit)"),
    (("readonly", "read-only"), "the database is read-only (check the folder's permissions)"),
    (("not a database", "malformed", "corrupt"), "the database file is corrupt"),
    (("disk i/o",), "a disk I/O error occurred"),
    (("unable to open",), "the database file cannot be opened (check the folder's permissions)"),
    (("closed",), "the store is closed"),
    (("locked", "busy"), "another process kept the database locked for too long"),
)


def plain_message(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    why = next((w for keys, w in _WHY if any(k in text.lower() for k in keys)), "database error")
    return f"{path}: {why} ({text})"


def event_row(run_id: str, seq: int, event: dict, now: float) -> tuple:
    """The events-table row of an event (a packed one's seq is the last of its range)."""
    n = event.get("n", 1)
    data = event["pack"] if n > 1 else to_json(event.get("data", {}))
    t = event.get("t", now)
    return (run_id, seq, str(event["type"]), int(event.get("step", 0)), t, data, n)


def events_from_row(row: tuple) -> list[dict]:
    """The event(s) a row holds: a packed row of n events becomes n of them, seqs ascending."""
    seq, kind, step, t, data, n = row
    if n == 1:
        return [{"seq": seq, "type": kind, "step": step, "t": t, "data": json.loads(data)}]
    first = seq - n + 1
    return [
        {"seq": first + i, "type": kind, "step": s, "t": ts, "data": d}
        for i, (s, ts, d) in enumerate(_unpack(data, n))
    ]
