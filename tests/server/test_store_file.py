"""The store's database file: opening, migrations, concurrent writers, failures."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from gradscope.server.store import Store, StoreError
from gradscope.server.store.schema import MIGRATIONS

from .test_store import metrics, new_run
from .test_store import store as store  # the fixture, shared


def _append_worker(data_dir: str, run_id: str, n: int, batch: int, barrier) -> None:
    """Runs in a spawned process: append n events in batches."""
    s = Store(Path(data_dir))
    barrier.wait()
    for i in range(0, n, batch):
        s.append_events(run_id, metrics(min(batch, n - i), i), {"step": i})
    s.close()


def _open_worker(data_dir: str, barrier) -> None:
    barrier.wait()
    Store(Path(data_dir)).close()


# -- migrations and opening ---------------------------------------------------------------


def test_fresh_db_is_migrated_to_the_latest_version_in_wal_mode(store: Store) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "events", "meta", "deleted_runs"} <= tables
    conn.close()
    assert store.integrity_check() == "ok"


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    first = Store(tmp_path)
    run = new_run(first)
    first.append_events(run.id, metrics(3))
    first.close()
    for _ in range(2):
        again = Store(tmp_path)
        assert again.get_run(run.id).last_seq == 3
        assert len(again.events(run.id)) == 3
        assert again.integrity_check() == "ok"
        again.close()
    conn = sqlite3.connect(tmp_path / "gradscope.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "gradscope.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match=rf"version {len(MIGRATIONS) + 1}.*upgrade Gradscope"):
        Store(tmp_path)


def test_processes_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_worker, args=(str(tmp_path), barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    s = Store(tmp_path)
    assert s.change_counter() == 0 and s.list_runs() == []  # migrated exactly once
    s.close()


def test_a_corrupt_file_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "gradscope.db").write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(StoreError, match=r"gradscope\.db.*corrupt"):
        Store(tmp_path)


def test_a_data_dir_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the data folder"):
        Store(tmp_path / "file" / "data")


def test_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.list_runs()


# -- concurrent writers and a full disk -------------------------------------------------


def test_two_processes_appending_to_one_run_get_distinct_consecutive_seqs(tmp_path: Path) -> None:
    s = Store(tmp_path)
    run = new_run(s)
    n, batch = 600, 25
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_append_worker, args=(str(tmp_path), run.id, n, batch, barrier))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    seqs = [e["seq"] for e in s.events(run.id)]
    assert seqs == list(range(1, 2 * n + 1))
    assert s.get_run(run.id).last_seq == 2 * n
    assert s.integrity_check() == "ok"
    s.close()


def test_threads_sharing_one_store_append_safely(store: Store) -> None:
    run = new_run(store)

    def work() -> None:
        for i in range(20):
            store.append_events(run.id, metrics(10, i * 10))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e["seq"] for e in store.events(run.id)] == list(range(1, 801))


def test_a_full_disk_raises_store_error_and_leaves_the_db_intact(store: Store) -> None:
    run = new_run(store)
    store.append_events(run.id, metrics(10))
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    big = [{"type": "weights", "step": i, "data": {"w": [0.5] * 2000}} for i in range(50)]
    with pytest.raises(StoreError, match=r"gradscope\.db.*disk is full"):
        for _ in range(20):
            store.append_events(run.id, big)
    assert store.integrity_check() == "ok"
    rec = store.get_run(run.id)
    assert [e["seq"] for e in store.events(run.id)] == list(range(1, rec.last_seq + 1))
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.append_events(run.id, metrics(1)) == rec.last_seq + 1
