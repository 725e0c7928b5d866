"""The SQLite store: runs and their event streams, shared by the server, its workers and the CLI."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gradscope.server.runs.events import NewEvent, Pending, StateData
from gradscope.server.store import blocks, series, summary
from gradscope.server.store.changes import ChangeReads
from gradscope.server.store.encoding import (
    encode_data,
    event_row,
    events_from_row,
    pack_events,
    to_json,
)
from gradscope.server.store.history import HistoryReads
from gradscope.server.store.liveness import pid_alive
from gradscope.server.store.schema import (
    COLUMNS,
    DB_NAME,
    ERROR_STATES,
    FINAL_STATES,
    INTERRUPTED_MESSAGE,
    JSON_COLUMNS,
    MIGRATIONS,
    PRAGMAS,
    RUN_STATES,
    SELECT_RUN,
    SOURCES,
    UPDATABLE,
    RunRecord,
    StoreError,
    check_run_id,
    migrate,
    plain_message,
    retry_locked,
    schema_version,
)

INSERT_CHUNK = 1000  # rows per INSERT: 7,000 bound values, far below SQLite's 32,766


@functools.lru_cache(maxsize=64)
def _insert_sql(n: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * n)
    return f"INSERT INTO events (run_id, seq, type, step, t, data, n) VALUES {values}"


class Store(HistoryReads, ChangeReads):
    """Runs and their events in data_dir/gradscope.db; safe to share between threads."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self._lock = threading.Lock()
        self._series_ids: dict[str, dict[str, int]] = {}  # run -> series -> id (series.py)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.data_dir}: cannot create the data folder ({exc})") from exc
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise StoreError(f"{self.data_dir}: the data folder is not writable")
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(plain_message(self.path, exc)) from exc
        try:
            with self._locked() as conn:
                for pragma in PRAGMAS:
                    retry_locked(lambda p=pragma: conn.execute(f"PRAGMA {p}"))
                retry_locked(self._migrate)
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock; sqlite errors become StoreError naming the file."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(plain_message(self.path, exc)) from exc

    @contextlib.contextmanager
    def _begin(self, mode: str) -> Iterator[sqlite3.Connection]:
        """One transaction on the connection (the caller holds the lock)."""
        self._conn.execute(f"BEGIN {mode}")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """Lock + transaction (IMMEDIATE takes the write lock up front: no upgrade deadlocks)."""
        with self._locked(), self._begin(mode) as conn:
            yield conn

    def _migrate(self) -> None:
        if schema_version(self._conn, self.path) == len(MIGRATIONS):
            return
        with self._begin("IMMEDIATE") as conn:
            # Another process may have migrated while we waited for the write lock.
            migrate(conn, schema_version(conn, self.path))
            summary.fill(conn)  # runs from before summaries (none once it has run)

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE meta SET counter = counter + 1 WHERE id = 1")
        return conn.execute("SELECT counter FROM meta WHERE id = 1").fetchone()[0]

    @staticmethod
    def _record(row: tuple) -> RunRecord:
        values = dict(zip(COLUMNS, row))
        for name in JSON_COLUMNS:
            values[name] = json.loads(values[name])
        return RunRecord(**values)

    def _get(self, conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
        row = conn.execute(f"{SELECT_RUN} WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else self._record(row)

    def _update(self, conn: sqlite3.Connection, run_id: str, fields: dict[str, Any]) -> None:
        """Write fields (already checked) + updated_at + the change counter."""
        fields = dict(fields, updated_at=time.time(), changed=self._bump(conn))
        for name in JSON_COLUMNS:
            if name in fields:
                fields[name] = to_json(fields[name])
        sets = ", ".join(f"{name} = ?" for name in fields)
        conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    @staticmethod
    def _check_fields(fields: dict[str, Any]) -> None:
        unknown = sorted(set(fields) - UPDATABLE)
        if unknown:
            hint = " (use set_state for the state)" if "state" in unknown else ""
            raise ValueError(f"cannot update run field(s) {', '.join(unknown)}{hint}")

    def _set_state(
        self, conn: sqlite3.Connection, run_id: str, state: str, message, op, traceback, only_from
    ) -> bool:
        row = conn.execute(
            "SELECT state, started_at, last_seq, step FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None or (only_from is not None and row[0] not in only_from):
            return False
        _, started_at, last_seq, step = row
        now = time.time()
        fields: dict[str, Any] = {"state": state, "last_seq": last_seq + 1}
        if state == "running" and started_at is None:
            fields["started_at"] = now
        if state in FINAL_STATES:
            fields["finished_at"] = now
        if state in ERROR_STATES:
            fields.update(error=message, error_op=op, traceback=traceback)
        elif state in ("queued", "running"):
            fields.update(error=None, error_op=None, traceback=None)
        self._update(conn, run_id, fields)
        extra = {k: v for k, v in (("message", message), ("op", op)) if v is not None}
        data = StateData(state=state, **extra)  # type: ignore[arg-type, typeddict-item]
        conn.execute(
            "INSERT INTO events (run_id, seq, type, step, t, data) VALUES (?, ?, 'state', ?, ?, ?)",
            (run_id, last_seq + 1, step, now, to_json(data)),
        )
        return True

    # -- public API -------------------------------------------------------------------------

    def checkpoint_dir(self, run_id: str) -> Path:
        """The folder holding a run's checkpoint files (not created here)."""
        return self.data_dir / "checkpoints" / check_run_id(run_id)

    def close(self) -> None:
        """Close the connection; later calls raise StoreError."""
        with self._lock:
            self._conn.close()

    def create_run(
        self,
        config: dict,
        *,
        preset: str | None,
        name: str | None,
        source: str,
        total_steps: int,
        fork: tuple[str, int, int] | None = None,
    ) -> RunRecord:
        """Insert a new queued run with a fresh id; `fork` (parent id, step, epoch): a fork,
        at that step, of a run that must exist (else KeyError)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        run_id = uuid.uuid4().hex[:12]
        name = name or f"{preset or 'run'} {run_id[:6]}"
        now, cfg = time.time(), to_json(config)
        parent, step, epoch = fork if fork is not None else (None, 0, 0)
        with self._tx() as conn:
            if parent is not None and self._get(conn, check_run_id(parent)) is None:
                raise KeyError(f"no run {parent}")  # deleted since it was looked at
            conn.execute(
                "INSERT INTO runs (id, name, preset, config, state, source, total_steps, "
                "created_at, updated_at, changed, parent_id, fork_step, step, epoch) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, preset, cfg, source, int(total_steps), now, now, self._bump(conn),
                 parent, None if parent is None else step, step, epoch),
            )  # fmt: skip
            return self._get(conn, run_id)  # type: ignore[return-value]

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None when there is no such run."""
        check_run_id(run_id)
        with self._locked() as conn:
            return self._get(conn, run_id)

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first."""
        with self._locked() as conn:
            rows = conn.execute(
                f"{SELECT_RUN} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (-1 if limit is None else int(limit),),
            ).fetchall()
        return [self._record(row) for row in rows]

    def update_run(self, run_id: str, **fields: Any) -> RunRecord | None:
        """Set some columns (not state: see set_state); None when there is no such run."""
        check_run_id(run_id)
        self._check_fields(fields)
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                return None
            self._update(conn, run_id, fields)
            return self._get(conn, run_id)

    def set_state(
        self,
        run_id: str,
        state: str,
        *,
        message: str | None = None,
        op: str | None = None,
        traceback: str | None = None,
        only_from: set[str] | None = None,
    ) -> bool:
        """Change the state and append its state event atomically; False if refused or unknown."""
        check_run_id(run_id)
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}")
        with self._tx() as conn:
            return self._set_state(conn, run_id, state, message, op, traceback, only_from)

    @staticmethod
    def encode(event: NewEvent) -> NewEvent:
        """The event encoded now rather than at its commit, e.g. to time what it costs (a
        health or weights event keeps its series, taken from the plain data, for the commit)."""
        return series.capture(event, encode_data(event))

    def append_events(
        self, run_id: str, events: Sequence[Pending], run_fields: dict | None = None
    ) -> int:
        """Append events with the next seqs (and update run_fields) in one transaction;
        consecutive metrics events (a step's may be its StepLoss) share a row (encoding.py)."""
        check_run_id(run_id)
        if run_fields:
            self._check_fields(run_fields)
        now = time.time()
        events = pack_events(events, now)
        aggregated = blocks.aggregate(series.commit_samples(events))  # before taking the lock
        figures = summary.of_commit(aggregated)  # before blocks.write renumbers its ids
        with self._tx() as conn:
            sql = "SELECT last_seq, summary FROM runs WHERE id = ?"
            row = conn.execute(sql, (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id}")
            first = row[0] + 1
            if figures:
                merged = summary.merge(json.loads(row[1]), figures)
                run_fields = {**(run_fields or {}), "summary": merged}
            rows, last = [], first - 1
            for e in events:
                last += e.get("n", 1)  # a packed event takes n seqs; its row has the last
                rows.append(event_row(run_id, last, e, now))
            # Multi-row INSERTs: one sqlite3_step per chunk rather than per row, so a
            # commit from a writer thread gives up and retakes the GIL a few times, not
            # once per event (each retake can wait for the training thread's switch).
            for i in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[i : i + INSERT_CHUNK]
                conn.execute(_insert_sql(len(chunk)), list(itertools.chain.from_iterable(chunk)))
            blocks.write(conn, run_id, aggregated, self._series_ids.setdefault(run_id, {}))
            if events or run_fields:
                self._update(conn, run_id, {**(run_fields or {}), "last_seq": last})
            return last

    def events(
        self,
        run_id: str,
        since: int = 0,
        limit: int | None = None,
        types: Iterable[str] | None = None,
    ) -> list[dict]:
        """Events with seq > since, ordered by seq, optionally only some types (at most limit)."""
        check_run_id(run_id)
        # A packed row is keyed by its last seq, so `seq > since` finds every row that holds
        # an event past since; the ones at or before it are dropped after unpacking.
        sql = "SELECT seq, type, step, t, data, n FROM events WHERE run_id = ? AND seq > ?"
        params: list[Any] = [run_id, int(since)]
        if types is not None:
            types = list(types)
            sql += f" AND type IN ({', '.join('?' * len(types))})"
            params += types
        sql += " ORDER BY seq"
        rows: list[tuple] = []
        with self._locked() as conn:
            if limit is None:
                rows = conn.execute(sql, params).fetchall()
            else:  # the limit counts events, not rows: a packed row holds many (lazy cursor)
                wanted = 0
                for row in conn.execute(sql, params):
                    rows.append(row)
                    wanted += min(row[5], row[0] - int(since))  # its events past since
                    if wanted >= limit:
                        break
        events = [e for row in rows for e in events_from_row(row)]
        if rows and rows[0][5] > 1:
            events = [e for e in events if e["seq"] > since]
        return events if limit is None else events[: int(limit)]

    def delete_run(self, run_id: str) -> bool:
        """Delete the run, its events and its checkpoint files; True if it existed."""
        check_run_id(run_id)
        with self._tx() as conn:
            existed = conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0
            if existed:
                conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
                blocks.delete(conn, run_id)
                self._series_ids.pop(run_id, None)
                conn.execute(
                    "INSERT OR REPLACE INTO deleted_runs (id, changed) VALUES (?, ?)",
                    (run_id, self._bump(conn)),
                )
        shutil.rmtree(self.checkpoint_dir(run_id), ignore_errors=True)
        return existed

    def mark_interrupted(self, ownerless: Iterable[str] = ()) -> list[str]:
        """Running/paused runs whose process is gone become "interrupted"; their ids.

        Runs of a source in `ownerless` (a starting server's own) are, whatever their pid."""
        marked = []
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, pid, source FROM runs WHERE state IN ('running', 'paused')"
            ).fetchall()
            for run_id, pid, source in rows:
                if source not in ownerless and pid_alive(pid):
                    continue  # e.g. a `gradscope train` still running beside the server
                self._set_state(conn, run_id, "interrupted", INTERRUPTED_MESSAGE, None, None, None)
                marked.append(run_id)
        return marked

    def integrity_check(self) -> str:
        """PRAGMA integrity_check's verdict ("ok" when healthy)."""
        with self._locked() as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(r[0] for r in rows)
