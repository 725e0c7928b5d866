"""`gradscope serve` refuses a data folder another server holds, and a damaged database,
with a clear message, a non-zero exit and the file left byte-for-byte as it was."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradscope.server.store import Store
from tests.server.conftest import ROOT, Server, free_port


def serve(data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`gradscope serve` on data_dir, expected to refuse and exit by itself."""
    cmd = [sys.executable, "-m", "gradscope.server.cli", "serve", "--port", str(free_port())]
    return subprocess.run(
        [*cmd, "--data-dir", str(data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_server_on_a_data_dir_exits_and_leaves_the_first_alone(
    server: Server,
) -> None:
    rid = server.create("moons", steps=1_000_000)["id"]
    server.wait_for(rid, lambda r: r["state"] == "running")
    second = serve(server.data_dir)
    assert second.returncode != 0
    assert server.proc is not None
    assert f"another Gradscope server (pid {server.proc.pid})" in second.stderr, second.stderr
    assert "--data-dir" in second.stderr
    time.sleep(0.5)
    step = server.run(rid)["step"]
    run = server.wait_for(rid, lambda r: r["step"] > step, timeout=30)
    assert run["state"] == "running" and run["error"] is None  # still the first's


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    """A data dir holding a database of a few runs, closed (its WAL folded in)."""
    data = tmp_path / "data"
    store = Store(data)
    for i in range(40):
        run = store.create_run(
            {"i": i, "pad": "x" * 2000}, preset=None, name=f"run {i}", source="cli", total_steps=1
        )
        store.append_events(run.id, [{"type": "state", "step": 0, "data": {"state": "queued"}}])
    store.close()
    db = data / "gradscope.db"
    assert db.stat().st_size > 64 * 1024 and not (data / "gradscope.db-wal").exists()
    return db


def damage_middle(db: Path) -> None:
    raw = bytearray(db.read_bytes())
    middle = len(raw) // 2 // 4096 * 4096  # a whole page in the middle of the file
    raw[middle : middle + 4096] = b"\xa5\x5a" * 2048
    db.write_bytes(bytes(raw))


def truncate(db: Path) -> None:
    raw = db.read_bytes()
    db.write_bytes(raw[: len(raw) // 3])


def empty(db: Path) -> None:
    db.write_bytes(b"")


@pytest.mark.parametrize(
    ("spoil", "said"),
    [(damage_middle, "damaged"), (truncate, "damaged"), (empty, "is empty (0 bytes)")],
)
def test_a_damaged_database_stops_the_server_before_it_writes(
    stored: Path, spoil, said: str
) -> None:
    spoil(stored)
    before = digest(stored)
    refused = serve(stored.parent)
    assert refused.returncode == 1, refused.stderr
    message = refused.stderr
    assert said in message and str(stored) in message, message
    assert ".recover" in message and "move" in message  # says how to recover
    assert digest(stored) == before  # byte for byte what it was
    assert not stored.with_name("gradscope.db-wal").exists()


def test_a_sound_database_starts(stored: Path) -> None:
    s = Server(stored.parent).start()
    try:
        assert len(s.request("GET", "/api/runs").json()["runs"]) == 40
    finally:
        s.stop()
