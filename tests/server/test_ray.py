"""`gradscope sweep --ray local`: a real local Ray instance (loopback, 2 CPUs) runs a sweep's
trials as Ray Tune function trainables that stream to a real server: they appear live with
their metrics, and a trial killed on the Ray side ends failed (or crashed), never running.

Ray's start is slow (seconds): one sweep, one Ray instance, for the whole module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import ROOT, Server

try:
    import ray  # noqa: F401
except ImportError:  # CI installs the extra (make setup-test): there its absence is a failure
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("the Ray extra is not installed: pip install -e '.[ray]'", allow_module_level=True)
DEADLINE = 120.0  # Ray and Tune start in seconds, slower on a loaded machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    env = {"GRADSCOPE_MNIST_DIR": str(real_mnist), "GRADSCOPE_INGEST_TIMEOUT": "5"}
    s = Server(tmp_path_factory.mktemp("ray") / "data", env).start()
    try:
        yield s
    finally:
        s.stop()


def until(what: str, check: Any, timeout: float = DEADLINE) -> Any:
    """check()'s first truthy answer, polled; AssertionError naming `what` past the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_ray_trials_stream_live_and_a_killed_one_ends_failed(
    server: Server, tmp_path: Path
) -> None:
    sweep = [sys.executable, "-m", "gradscope.server.cli", "sweep", "--ray", "local"]
    sweep += ["--ray-cpus", "2", "--url", server.url, "--preset", "xor", "--name", "ray"]
    sweep += ["--set", "batch_size=100", "--grid", "steps=150,1000000"]
    log = tmp_path / "sweep.log"
    with open(log, "wb") as out:
        driver = subprocess.Popen(sweep, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        made = until("the sweep", lambda: server.request("GET", "/api/sweeps").json()["sweeps"])
        runs = {r["config"]["steps"]: r["id"] for r in made[0]["runs"]}
        short, long = runs[150], runs[1_000_000]

        def live() -> dict[str, Any] | None:
            run = server.run(long)
            return run if run["state"] == "running" and run["step"] > 0 and run["pid"] else None

        first = until("the long trial to stream its steps", live)
        later = until("more steps", lambda: (r := live()) and r["step"] > first["step"] and r)
        losses = server.request("GET", f"/api/runs/{long}/metrics").json()["series"]
        assert len(losses["train_loss"]["step"]) >= later["step"] - 1 > 0  # live, not at the end
        done = until("the short trial", lambda: server.run(short)["state"] in ("finished",))
        assert done
        finished = server.run(short)
        assert finished["step"] == 150 and "test_acc" in finished["summary"]

        os.kill(later["pid"], signal.SIGKILL)  # the trial's process, on the Ray side
        ended = until(
            "the killed trial's run to end",
            lambda: (r := server.run(long))["state"] in ("failed", "crashed") and r,
        )
        assert ended["step"] < 1_000_000 and ended["error"]
        assert driver.wait(DEADLINE) == 1, log.read_text()  # not every run finished
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
    sweep_now = server.request("GET", f"/api/sweeps/{made[0]['id']}").json()
    assert sweep_now["state"] == "done" and sweep_now["best_run"] == short  # not the failed one
    assert f"best run: ray steps=150 ({short})" in log.read_text()
