"""Faults in a live server: divergence, an exception in a worker, a corrupt checkpoint, corrupt
MNIST files, a full disk, a read-only data folder, a data folder that cannot be used at all.

Each fault is real: the run really diverges, the checkpoint file really is cut short, the
kernel really refuses the writes (a file-size limit, or a folder an unprivileged server
may not write). Each ends the affected run as `failed` with a message (and, for an
exception, the traceback), leaves every committed step in place exactly once, keeps the
server serving, and leaves a SQLite file that passes PRAGMA integrity_check.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gradscope.engine.mnist import FILES
from gradscope.server.store import pid_alive
from tests.server.confined import (
    ConfinedServer,
    as_unprivileged,
    file_size_limit,
    serve_command,
)
from tests.server.conftest import ROOT, Server, free_port, integrity, step_metrics, watch

TENSOR_OPS = {"linear", "relu", "tanh", "sigmoid", "mse_loss", "cross_entropy", "hinge"}
ENDED = {"finished", "stopped", "failed", "crashed", "interrupted"}


def whole_history(server: Server, run_id: str) -> list[int]:
    """The run's committed history: seqs 1..n and training steps 1..N, each once; N."""
    events = server.events(run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    steps = step_metrics(events)
    assert steps == list(range(1, len(steps) + 1)), "a step is missing or duplicated"
    assert steps[-1:] == [server.run(run_id)["step"]] or not steps
    return steps


# -- divergence and exceptions ---------------------------------------------------------------


def test_divergence_fails_the_run_naming_the_op(module_server: Server) -> None:
    server = module_server  # the fault is the run's own: the server is shared
    run = server.create(
        "moons",
        loss="mse",
        model={"hidden": [256, 256, 256]},
        optimizer={"name": "sgd", "lr": 10.0},
        batch_size=None,
        steps=500,
    )
    _, events = watch(server.ws_url, run["id"])
    failed = server.run(run["id"])
    assert failed["state"] == "failed", failed
    assert failed["error_op"] in TENSOR_OPS and "NaN or Inf" in failed["error"], failed
    assert failed["error_op"] in failed["error"]
    last = [e for e in events if e["type"] == "state"][-1]["data"]
    assert last == {"state": "failed", "message": failed["error"], "op": failed["error_op"]}
    assert len(whole_history(server, run["id"])) == failed["step"] < 500
    # What it computed failed, not its surroundings: resuming would only fail again.
    again = server.request("POST", f"/api/runs/{run['id']}/resume")
    assert again.status_code == 409 and "failed" in again.json()["detail"]


def _kill_worker_mid_run(server: Server, run_id: str, past: int) -> dict[str, Any]:
    running = server.wait_for(run_id, lambda r: r["state"] == "running" and r["step"] > past)
    os.kill(running["pid"], signal.SIGKILL)
    crashed = server.wait_for(run_id, lambda r: r["state"] == "crashed")
    assert crashed["checkpoint"] is not None, crashed
    return crashed


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign_checkpoint(server: Server, path: Path) -> None:
    """Put the checkpoint of another architecture (a finished napkin run) in its place."""
    other = server.create("moons", model={"hidden": [3]}, steps=50)
    done = server.wait_for(other["id"], lambda r: r["state"] == "finished")
    shutil.copyfile(server.data_dir / "checkpoints" / other["id"] / done["checkpoint"], path)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [(_cut_in_half, "cannot read checkpoint"), (_foreign_checkpoint, "does not fit this model")],
    ids=["truncated", "another-model"],
)
def test_a_corrupt_checkpoint_fails_the_resume_with_a_traceback(
    module_server: Server, spoil: Any, message: str
) -> None:
    """An exception inside a worker (here CheckpointError, on resume) fails the run, and the
    run record carries the exception's message and its full traceback."""
    server = module_server  # the worker killed and the checkpoint spoiled are the run's own
    run = server.create("moons", steps=20_000, record={"checkpoint_every": 100})
    crashed = _kill_worker_mid_run(server, run["id"], 300)
    path = server.data_dir / "checkpoints" / run["id"] / crashed["checkpoint"]
    if spoil is _foreign_checkpoint:
        spoil(server, path)
    else:
        spoil(path)
    assert server.request("POST", f"/api/runs/{run['id']}/resume").status_code == 200
    failed = server.wait_for(run["id"], lambda r: r["state"] == "failed")
    assert failed["error"].startswith("CheckpointError: ") and message in failed["error"]
    assert str(path) in failed["error"]
    tb = failed["traceback"]
    assert tb.startswith("Traceback (most recent call last)") and "load_checkpoint" in tb
    assert "CheckpointError" in tb.splitlines()[-1]
    assert whole_history(server, run["id"])[-1] == crashed["step"]  # nothing added, nothing lost
    assert integrity(server.data_dir) == "ok"


def test_corrupt_mnist_files_fail_the_run_naming_the_file(tmp_path: Path, real_mnist: Path) -> None:
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for name in FILES:
        shutil.copyfile(real_mnist / name, mnist / name)
    _cut_in_half(mnist / "train-labels-idx1-ubyte.gz")
    env = {"GRADSCOPE_MNIST_DIR": str(mnist), "GRADSCOPE_MAX_CONCURRENT": "1"}
    server = Server(tmp_path / "data", env).start()
    try:
        run = server.create("mnist-mlp", model={"hidden": [8]}, epochs=None, steps=5)
        failed = server.wait_for(run["id"], lambda r: r["state"] in ENDED, timeout=120)
        assert failed["state"] == "failed", failed
        assert failed["error"].startswith("MnistError: ")
        assert str(mnist / "train-labels-idx1-ubyte.gz") in failed["error"]
        assert "truncated" in failed["error"] or "corrupt" in failed["error"]
        assert "Traceback (most recent call last)" in failed["traceback"]
        assert failed["step"] == 0 and step_metrics(server.events(run["id"])) == []
        ok = server.create("moons", steps=50)  # the server is not hurt
        assert server.wait_for(ok["id"], lambda r: r["state"] in ENDED)["state"] == "finished"
        # The data's fault, not the run's: with the file whole again, resume trains it.
        shutil.copyfile(
            real_mnist / "train-labels-idx1-ubyte.gz", mnist / "train-labels-idx1-ubyte.gz"
        )
        assert server.request("POST", f"/api/runs/{run['id']}/resume").status_code == 200
        done = server.wait_for(run["id"], lambda r: r["state"] in ENDED, timeout=120)
        assert done["state"] == "finished" and done["error"] is None, done
        assert whole_history(server, run["id"]) == [1, 2, 3, 4, 5]
    finally:
        server.stop()
    assert integrity(server.data_dir) == "ok"


# -- a full disk -----------------------------------------------------------------------------


@contextlib.contextmanager
def confined(data_dir: Path, mnist: Path, **popen: Any) -> Iterator[ConfinedServer]:
    env = {"GRADSCOPE_MNIST_DIR": str(mnist), "GRADSCOPE_MAX_CONCURRENT": "1"}
    server = ConfinedServer(data_dir, env, **popen).start()
    try:
        yield server
    finally:
        server.stop()


def _after_restart_unconfined(data_dir: Path, mnist: Path) -> Server:
    """The same data folder, served again without the fault: a new run trains to the end."""
    server = Server(data_dir, {"GRADSCOPE_MNIST_DIR": str(mnist)}).start()
    run = server.create("moons", steps=100)
    assert server.wait_for(run["id"], lambda r: r["state"] in ENDED)["state"] == "finished"
    return server


def test_a_full_disk_fails_the_run_writing_a_checkpoint(tmp_path: Path, real_mnist: Path) -> None:
    """Every file capped at 1 MB: the first checkpoint of a 263k-parameter Adam run (3 MB)
    is refused by the kernel (EFBIG); the database, far below the cap, records why."""
    data = tmp_path / "data"
    with confined(data, real_mnist, preexec_fn=file_size_limit(1_000_000)) as server:
        run = server.create(
            "moons", model={"hidden": [512, 512]}, steps=5000, record={"checkpoint_every": 20}
        )
        failed = server.wait_for(run["id"], lambda r: r["state"] in ENDED)
        assert failed["state"] == "failed", failed
        assert failed["error"].startswith("OSError: ") and "File too large" in failed["error"]
        assert "save_checkpoint" in failed["traceback"]
        assert failed["step"] == 20 and failed["checkpoint"] is None
        assert whole_history(server, run["id"])[-1] == 20
        assert not list((data / "checkpoints" / run["id"]).iterdir()), "no partial file left"
        assert server.request("GET", "/api/runs").status_code == 200  # still serving
    assert integrity(data) == "ok"
    _after_restart_unconfined(data, real_mnist).stop()


def test_a_full_disk_fails_the_run_writing_the_database(tmp_path: Path, real_mnist: Path) -> None:
    """Every file capped at 3 MB: the run records every step (weights, boundary, health), its
    write-ahead log reaches the cap, SQLite's write fails, the run fails with the store's
    message; nothing committed is lost and the file is whole, before and after a restart."""
    data = tmp_path / "data"
    with confined(data, real_mnist, preexec_fn=file_size_limit(3_000_000)) as server:
        run = server.create("moons", steps=100_000, record={"every": 1})
        failed = server.wait_for(
            run["id"],
            lambda r: (
                r["state"] != "queued" and not (r["state"] == "running" and pid_alive(r["pid"]))
            ),
        )
        assert server.request("GET", "/api/runs").status_code == 200  # still serving
        steps = whole_history(server, run["id"])
    assert integrity(data) == "ok"
    after = _after_restart_unconfined(data, real_mnist)
    try:
        again = after.run(run["id"])
        if failed["state"] == "running":
            # Not even the one-row state change fitted: it is left resumable.
            assert again["state"] in ("interrupted", "crashed"), again
        else:
            assert failed["state"] == again["state"] == "failed", failed
            assert "gradscope.db" in failed["error"] and "disk" in failed["error"], failed
            assert "Traceback (most recent call last)" in failed["traceback"]
        assert 0 < len(steps) < 100_000 and whole_history(after, run["id"]) == steps
    finally:
        after.stop()
    assert integrity(data) == "ok"


# -- a read-only data folder -----------------------------------------------------------------


@pytest.fixture
def top(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, made writable again afterwards so pytest can clean it up."""
    yield tmp_path
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], check=False)


def _read_only(path: Path) -> None:
    subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)


def test_a_data_folder_turned_read_only_fails_runs_cleanly(top: Path, real_mnist: Path) -> None:
    """The server runs without root's file powers; its data folder (database, checkpoints) becomes
    read-only mid-run. The training run fails at its next checkpoint, a new run fails at
    once, both with the reason; made writable again, everything carries on."""
    data = top / "data"
    with confined(data, real_mnist, **as_unprivileged()) as server:
        run = server.create("moons", steps=50_000, record={"checkpoint_every": 200})
        server.wait_for(run["id"], lambda r: r["checkpoint_step"] is not None)
        _read_only(data)
        failed = server.wait_for(run["id"], lambda r: r["state"] in ENDED)
        assert failed["state"] == "failed", failed
        assert "PermissionError" in failed["error"] and "checkpoints" in failed["error"]
        assert "Traceback (most recent call last)" in failed["traceback"]
        steps = whole_history(server, run["id"])

        new = server.create("moons", steps=100)
        refused = server.wait_for(new["id"], lambda r: r["state"] in ENDED)
        assert refused["state"] == "failed" and "not writable" in refused["error"], refused
        assert str(data) in refused["error"]
        assert server.request("GET", "/api/runs").status_code == 200

        subprocess.run(["chmod", "-R", "u+w", str(data)], check=True)
        ok = server.create("moons", steps=100)
        assert server.wait_for(ok["id"], lambda r: r["state"] in ENDED)["state"] == "finished"
        # A failure of the surroundings, not of the training: both runs resume now.
        assert whole_history(server, run["id"]) == steps
        for rid in (new["id"], run["id"]):  # one slot: the short one first
            again = server.request("POST", f"/api/runs/{rid}/resume")
            assert again.status_code == 200, again.text
            if rid == new["id"]:
                done = server.wait_for(rid, lambda r: r["state"] in ENDED)
                assert done["state"] == "finished", done
        server.wait_for(run["id"], lambda r: r["step"] > failed["step"])
        server.request("POST", f"/api/runs/{run['id']}/stop")  # unless it finished already
        server.wait_for(run["id"], lambda r: r["state"] in ("stopped", "finished"))
        assert whole_history(server, run["id"])[: len(steps)] == steps
    assert integrity(data) == "ok"


# -- a data folder that cannot be used at all ----------------------------------------------


def _a_file(top: Path) -> Path:
    (top / "file").write_text("not a folder")
    return top / "file"


def _under_a_file(top: Path) -> Path:
    return _a_file(top) / "data"


def _read_only_folder(top: Path) -> Path:
    (top / "data").mkdir()
    _read_only(top / "data")
    return top / "data"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_a_file, "cannot create the data folder"),
        (_under_a_file, "cannot create the data folder"),
        (_read_only_folder, "not writable"),
    ],
    ids=["a-file", "under-a-file", "read-only"],
)
def test_serve_on_an_unusable_data_folder_exits_with_a_message(
    top: Path, make: Any, message: str
) -> None:
    data = make(top)
    proc = subprocess.run(
        serve_command(free_port(), data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        **as_unprivileged(),
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert message in output and str(data) in output, output
    assert "Traceback" not in output, output
