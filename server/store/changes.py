"""What changed in the store, for the hub: each run's last seq, the change counter, and the
runs created, updated or deleted since a counter value. Store mixes these in (db.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gradscope.server.store.schema import SELECT_RUN, RunRecord, check_run_id


class ChangeReads:
    """Store's change reads (Store provides _locked, _tx and _record)."""

    _locked: Any
    _tx: Any
    _record: Any

    def last_seqs(self, run_ids: Iterable[str]) -> dict[str, int]:
        """Each known run's last seq (unknown ids are left out)."""
        ids = [check_run_id(r) for r in run_ids]
        out: dict[str, int] = {}
        with self._locked() as conn:
            for i in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
                chunk = ids[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT id, last_seq FROM runs WHERE id IN ({marks})"
                out.update(conn.execute(sql, chunk).fetchall())
        return out

    def change_counter(self) -> int:
        """A counter bumped by every run create, update, state change, event append and delete."""
        with self._locked() as conn:
            return conn.execute("SELECT counter FROM meta WHERE id = 1").fetchone()[0]

    def runs_changed_since(self, counter: int) -> tuple[int, list[RunRecord], list[str]]:
        """(current counter, runs changed after counter, ids deleted after counter)."""
        with self._tx("DEFERRED") as conn:  # one snapshot for all three reads
            now = conn.execute("SELECT counter FROM meta WHERE id = 1").fetchone()[0]
            rows = conn.execute(
                f"{SELECT_RUN} WHERE changed > ? ORDER BY changed", (counter,)
            ).fetchall()
            deleted = conn.execute(
                "SELECT id FROM deleted_runs WHERE changed > ? ORDER BY changed", (counter,)
            ).fetchall()
        return now, [self._record(r) for r in rows], [r[0] for r in deleted]
