"""One path each: restart recovery, pid liveness, and the predict path's checkpoint reading."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gradscope.engine import checkpoint, nn
from gradscope.server.store import INTERRUPTED_MESSAGE, Store, pid_alive
from tests.server.conftest import in_process

GONE = 2**22 + 12345  # beyond pid_max: no process has it


@pytest.fixture
def sleeper() -> Iterator[int]:
    """The pid of a live process that is no Gradscope worker."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(30)


def _active(store: Store, source: str, pid: int | None, state: str = "running") -> str:
    run = store.create_run({"lr": 0.1}, preset=None, name=None, source=source, total_steps=10)
    for s in ["running", "paused"][: 1 + (state == "paused")]:
        store.set_state(run.id, s)
    store.update_run(run.id, pid=pid)
    return run.id


def test_a_restarted_server_marks_its_dead_runs_interrupted(
    tmp_path: Path, real_mnist: Path, sleeper: int
) -> None:
    data = tmp_path / "data"
    store = Store(data)
    dead = _active(store, "server", GONE)
    paused = _active(store, "server", None, state="paused")
    lingering = _active(store, "server", sleeper)  # the old server's worker, not yet gone
    training = _active(store, "cli", sleeper)  # a live `gradscope train` keeps its run
    cli_dead = _active(store, "cli", GONE)
    store.close()

    with in_process(data, real_mnist) as app:
        states = {rid: app.run(rid)["state"] for rid in (dead, paused, lingering, cli_dead)}
        assert states == dict.fromkeys(states, "interrupted")
        assert app.run(training)["state"] == "running"
        last = app.request("GET", f"/api/runs/{dead}/export", params={"format": "json"})
        assert last.json()["events"][-1]["data"] == {
            "state": "interrupted",
            "message": INTERRUPTED_MESSAGE,
        }
        # and it can be resumed, as any interrupted run
        assert app.request("POST", f"/api/runs/{dead}/stop").json()["state"] == "stopped"


def test_a_zombie_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        # Exited but not reaped: WNOWAIT leaves it a zombie.
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not pid_alive(proc.pid)
    finally:
        proc.wait(30)
    assert not pid_alive(proc.pid) and not pid_alive(GONE) and not pid_alive(None)
    assert not pid_alive(os.getpid())  # never this process: it owns no run as a worker


# -- the predict path reads checkpoints through the engine's reader ---------------------------

ONE = [[1.0 if 5 <= r <= 22 and 13 <= c <= 15 else 0.0 for c in range(28)] for r in range(28)]
MNIST_CONFIG = {"dataset": {"name": "mnist"}, "loss": "cross_entropy", "model": {"hidden": [8]}}


def _finished_mnist_run(data: Path, write: object) -> str:
    """A finished MNIST run whose last checkpoint event names a file `write(path)` makes."""
    store = Store(data)
    run = store.create_run(MNIST_CONFIG, preset=None, name=None, source="server", total_steps=1)
    store.set_state(run.id, "running")
    store.append_events(
        run.id, [{"type": "checkpoint", "step": 1, "t": 1.0, "data": {"file": "step-1.npz"}}]
    )
    store.set_state(run.id, "finished")
    folder = store.checkpoint_dir(run.id)
    folder.mkdir(parents=True)
    write(folder / "step-1.npz")  # type: ignore[operator]
    store.close()
    return run.id


def _good(path: Path) -> None:
    checkpoint.save_checkpoint(path, nn.MLP([784, 8, 10]))


def _predict(app: object, run_id: str) -> tuple[int, str]:
    r = app.request("POST", "/api/predict", json={"pixels": ONE, "model": run_id})  # type: ignore[attr-defined]
    return r.status_code, r.json()["detail"] if r.status_code != 200 else ""


def test_a_good_checkpoint_predicts(tmp_path: Path, real_mnist: Path) -> None:
    run_id = _finished_mnist_run(tmp_path / "data", _good)
    with in_process(tmp_path / "data", real_mnist) as app:
        r = app.request("POST", "/api/predict", json={"pixels": ONE, "model": run_id})
        assert r.status_code == 200 and r.json()["model"] == run_id


def test_an_oversized_checkpoint_gets_the_engines_size_guard(
    tmp_path: Path, real_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _finished_mnist_run(tmp_path / "data", _good)
    monkeypatch.setattr(checkpoint, "MAX_BYTES", 1000)  # the file's arrays are ~25 kB
    with in_process(tmp_path / "data", real_mnist) as app:
        status, detail = _predict(app, run_id)
    assert status == 409
    assert "its checkpoint cannot be used" in detail and "its arrays are too large" in detail


def _crafted(path: Path) -> None:
    """A valid checkpoint whose first array claims a shape of terabytes in its header."""
    _good(path)
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    name = next(n for n in members if n.startswith("model/"))
    head = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    head["shape"] = (1 << 20, 1 << 20)
    from io import BytesIO

    buf = BytesIO()
    np.lib.format.write_array_header_1_0(buf, head)
    members[name] = buf.getvalue() + b"\0" * 16
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


@pytest.mark.parametrize(
    "write,says",
    [
        (lambda p: p.write_bytes(b"not a zip at all"), "cannot read checkpoint"),
        (_crafted, "needs"),
        (lambda p: np.savez(p, header=np.array('{"format": "other"}')), "not a gradscope"),
    ],
    ids=["garbage", "crafted-shape", "not-ours"],
)
def test_a_corrupt_checkpoint_gets_the_readers_clear_error(
    tmp_path: Path, real_mnist: Path, write: object, says: str
) -> None:
    run_id = _finished_mnist_run(tmp_path / "data", write)
    with in_process(tmp_path / "data", real_mnist) as app:
        status, detail = _predict(app, run_id)
    assert status == 409 and f"run {run_id}: its checkpoint cannot be used" in detail
    assert says in detail


def test_weights_that_do_not_fit_their_architecture_are_refused(
    tmp_path: Path, real_mnist: Path
) -> None:
    def nan_weights(path: Path) -> None:
        model = nn.MLP([784, 8, 10])
        model.load_state_dict({k: np.full_like(v, np.nan) for k, v in model.state_dict().items()})
        checkpoint.save_checkpoint(path, model)

    run_id = _finished_mnist_run(tmp_path / "data", nan_weights)
    with in_process(tmp_path / "data", real_mnist) as app:
        status, detail = _predict(app, run_id)
    assert status == 409 and "NaN or Inf" in detail
