"""The store's schema: run states, migrations, the run record, run ids and error messages.

How events are encoded in the rows is encoding.py's job.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path

from gradscope.server.runs.events import RUN_STATES  # noqa: F401 - the store's states

ACTIVE_STATES = {"queued", "running", "paused"}
FINAL_STATES = {"finished", "stopped", "failed"}
RESUMABLE_STATES = {"paused", "crashed", "interrupted"}
ERROR_STATES = {"failed", "crashed"}
SOURCES = ("server", "cli", "external")  # external: a script logging through the ingest API
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
    # Series summaries (blocks.py): each series of a run gets an id, and each kind of series
    # (metrics, or records: health and weights), level (a block size in steps) and block
    # (step // level) one row whose blob holds those series' first, min, max and last there.
    # Runs written before have none: they wait in series_pending until a read rebuilds them
    # from their events.
    """
    CREATE TABLE series_names (
        run_id TEXT NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL,
        PRIMARY KEY (run_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE series_blocks (
        run_id TEXT NOT NULL, kind TEXT NOT NULL, level INTEGER NOT NULL,
        block INTEGER NOT NULL, stats BLOB NOT NULL,
        PRIMARY KEY (run_id, kind, level, block)
    ) WITHOUT ROWID;
    CREATE TABLE series_pending (run_id TEXT PRIMARY KEY) WITHOUT ROWID;
    INSERT INTO series_pending (run_id) SELECT id FROM runs;
    """,
    # A run's tags (a JSON list of strings) and its summary (summary.py: the final and best
    # value of each of its loss and accuracy metrics, kept as its metrics are committed).
    # Runs written before start with none: Store fills their summaries when it opens them.
    """
    ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE runs ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
    """,
    # Lineage: a fork (server/runs/fork.py) names the run it was forked from and the step;
    # its history up to that step is its parent's, read through (history.py), never copied.
    """
    ALTER TABLE runs ADD COLUMN parent_id TEXT;
    ALTER TABLE runs ADD COLUMN fork_step INTEGER;
    CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_id);
    """,
]
# The runs columns that hold JSON (the rest are plain values).
JSON_COLUMNS = ("config", "tags", "summary")

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


def has_column(conn: sqlite3.Connection, statement: str) -> bool:
    """Whether an ALTER TABLE ... ADD COLUMN statement's column is there already (a file
    whose version was set back by hand keeps the columns of later versions)."""
    words = statement.split()
    if [w.upper() for w in words[:2] + words[3:5]] != ["ALTER", "TABLE", "ADD", "COLUMN"]:
        return False
    return any(r[1] == words[5] for r in conn.execute(f"PRAGMA table_info({words[2]})"))


RUN_ID = re.compile(r"^[0-9a-f]{12}$")  # the one definition


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
    tags: list[str]
    summary: dict
    parent_id: str | None = None  # the run this one was forked from (None: not a fork)
    fork_step: int | None = None  # the parent's step it continues from

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)


COLUMNS = tuple(f.name for f in dataclass_fields(RunRecord))
SELECT_RUN = f"SELECT {', '.join(COLUMNS)} FROM runs"
# state goes through set_state (it writes the state event); the rest is the store's bookkeeping
# (the summary follows the committed metrics); a run's lineage is set when it is created.
UPDATABLE = frozenset(COLUMNS) - {
    "id", "state", "created_at", "updated_at", "last_seq", "summary", "parent_id", "fork_step"
}  # fmt: skip


class StoreError(RuntimeError):
    """The database cannot be used: disk full, read-only, corrupt, or from a newer Gradscope."""


def check_run_id(run_id: str) -> str:
    """Return run_id if it has our shape (12 hex digits); paths are built from it."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


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


def schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, refused when newer than ours."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path}: the database is schema version {version}, but this Gradscope only "
            f"knows up to {len(MIGRATIONS)}; upgrade Gradscope or use another data folder"
        )
    return version


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Run the migrations after `version` in the caller's transaction; a column a migration
    would add that is there already (an older build's) is skipped."""
    for sql in MIGRATIONS[version:]:
        for statement in filter(str.strip, sql.split(";")):
            if not has_column(conn, statement):
                conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
