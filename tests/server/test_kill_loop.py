"""kill -9, over and over: a worker, then the whole server, in turn, for twelve rounds while
two runs train and resume. Afterwards every run is final or resumable, every committed
training step is there exactly once, and the SQLite file passes its integrity check."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from gradscope.server.store import pid_alive
from tests.server.conftest import Server, integrity

ROUNDS = 8  # even rounds kill a worker, odd rounds the server
RUNS = 2
STEPS = 1_000_000  # far more than the rounds get through: the runs never finish on their own
PROGRESS = 150  # steps each run trains past its last committed one before a kill
RESUMABLE = {"crashed", "interrupted"}
FINAL = {"finished", "stopped", "failed"}


def _wait(what: str, predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _resume(server: Server, run_id: str) -> None:
    """Resume; a 409 saying the last worker is still exiting is retried until it has."""

    def attempt() -> bool:
        r = server.request("POST", f"/api/runs/{run_id}/resume")
        if r.status_code == 409 and "still exiting" in r.text:
            return False
        assert r.status_code == 200, r.text
        return True

    _wait(f"resume of {run_id}", attempt)


def _train_a_bit(server: Server, run_ids: list[str], since: dict[str, int]) -> list[dict]:
    """Wait until every run is running, PROGRESS steps past where it was."""
    return [
        server.wait_for(
            rid, lambda r, rid=rid: r["state"] == "running" and r["step"] >= since[rid] + PROGRESS
        )
        for rid in run_ids
    ]


def _train_loss_steps(server: Server, run_id: str) -> list[int]:
    r = server.request("GET", f"/api/runs/{run_id}/metrics", params={"names": "train_loss"})
    assert r.status_code == 200, r.text
    series = r.json()["series"]
    return series["train_loss"]["step"] if "train_loss" in series else []


def test_kill_workers_and_the_server_in_turn(tmp_path: Path, real_mnist: Path) -> None:
    env = {"GRADSCOPE_MNIST_DIR": str(real_mnist), "GRADSCOPE_MAX_CONCURRENT": str(RUNS)}
    server = Server(tmp_path / "data", env).start()
    try:
        runs = [
            server.create("moons", steps=STEPS, record={"checkpoint_every": 100})["id"]
            for _ in range(RUNS)
        ]
        committed = dict.fromkeys(runs, 0)
        for round_ in range(ROUNDS):
            for rid in runs:
                if server.run(rid)["state"] in RESUMABLE:
                    _resume(server, rid)
            live = _train_a_bit(server, runs, committed)
            if round_ % 2 == 0:  # a worker, each run's in turn
                victim = live[(round_ // 2) % RUNS]
                os.kill(victim["pid"], signal.SIGKILL)
                crashed = server.wait_for(victim["id"], lambda r: r["state"] == "crashed")
                assert "signal 9" in crashed["error"]
            else:  # the server, with its workers left orphaned
                server.kill()
                server.start()
                for run in live:
                    _wait(f"worker {run['pid']} to exit", lambda pid=run["pid"]: not pid_alive(pid))
            for rid in runs:
                run = server.wait_for(rid, lambda r: r["state"] != "queued")
                assert run["state"] in RESUMABLE | {"running"}, run
                # Nothing committed is ever lost: the step never goes back.
                assert run["step"] >= committed[rid], (run, committed)
                committed[rid] = run["step"]

        for rid in runs:  # after the last kill: each run resumes and continues
            if server.run(rid)["state"] in RESUMABLE:
                _resume(server, rid)
        _train_a_bit(server, runs, committed)
        server.stop()  # a clean shutdown leaves them interrupted
        server.start()
        for rid in runs:
            run = server.run(rid)
            assert run["state"] in RESUMABLE | FINAL, run
            steps = _train_loss_steps(server, rid)
            assert steps == list(range(1, run["step"] + 1)), "a step is missing or duplicated"
            assert run["step"] >= committed[rid] + PROGRESS
    finally:
        server.stop()
    assert integrity(tmp_path / "data") == "ok"


def test_a_lingering_worker_of_a_killed_server_blocks_its_resume(
    tmp_path: Path, real_mnist: Path
) -> None:
    """The server dies while a worker is frozen (SIGSTOP): the worker outlives it, holding
    uncommitted steps. Resuming the run now would put two workers on it; the restarted
    server refuses until the old worker has flushed and exited, then resumes it whole."""
    env = {"GRADSCOPE_MNIST_DIR": str(real_mnist), "GRADSCOPE_MAX_CONCURRENT": "1"}
    server = Server(tmp_path / "data", env).start()
    try:
        rid = server.create("moons", steps=STEPS, record={"checkpoint_every": 100})["id"]
        (live,) = _train_a_bit(server, [rid], {rid: 0})
        os.kill(live["pid"], signal.SIGSTOP)
        try:
            server.kill()
            server.start()
            assert server.wait_for(rid, lambda r: r["state"] == "interrupted")
            r = server.request("POST", f"/api/runs/{rid}/resume")
            assert r.status_code == 409 and "still exiting" in r.text, r.text
        finally:
            os.kill(live["pid"], signal.SIGCONT)
        _wait("the old worker to exit", lambda: not pid_alive(live["pid"]))
        _resume(server, rid)
        (again,) = _train_a_bit(server, [rid], {rid: server.run(rid)["step"]})
        assert again["pid"] != live["pid"]
        server.stop()
        server.start()
        run = server.run(rid)
        assert _train_loss_steps(server, rid) == list(range(1, run["step"] + 1))
    finally:
        server.stop()
