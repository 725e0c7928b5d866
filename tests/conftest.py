"""Shared fixtures: the real MNIST files (../shared/mnist beside the checkout, or the env).

BLAS runs on one thread in the tests: set here, before numpy is first imported, it holds for
this process and for every server and worker the tests start (they inherit the environment).
Several processes each spinning a BLAS thread per core on a small machine slow each other
many times over.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from gradscope.engine.examples import NapkinAverage  # noqa: E402
from gradscope.engine.mnist import FILES  # noqa: E402

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "mnist"


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST folder; skipped when absent, except under CI where it must be there."""
    folder = Path(os.environ.get("GRADSCOPE_MNIST_DIR") or SHARED_MNIST)
    if not all((folder / name).is_file() for name in FILES):
        message = f"the real MNIST files are not in {folder} (set GRADSCOPE_MNIST_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def napkin_trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[NapkinAverage, list[float]]:
    """The first article's neuron after its 300 full-batch steps on the scalar engine, and
    the loss of each step. Those steps take the scalar engine 15 s, so every test that checks
    them (the article's numbers, the tensor engine and the napkin preset against them) shares
    this one run; they only read it. Under xdist the first worker to need it trains it and
    writes the weights and losses beside the workers' temporary folders; the others wait for
    the file (a lock) and rebuild the neuron from it, with its final loss graph."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's folder sits in this run's folder; alone, the run's is its own.
    run_dir = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    shared = run_dir / "napkin_trained.json"
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shared.exists():
            saved = json.loads(shared.read_text())
            napkin = NapkinAverage(weights=saved["weights"])
            napkin.steps, napkin.last_loss = saved["steps"], napkin.loss()
            return napkin, saved["losses"]
        napkin = NapkinAverage()
        gc.disable()  # as the trainers do: the graphs are acyclic, and the scans cost half
        try:
            losses = napkin.train(300)
        finally:
            gc.enable()
        saved = {"weights": napkin.weights, "steps": napkin.steps, "losses": losses}
        shared.write_text(json.dumps(saved))  # floats round-trip exactly through JSON
        return napkin, losses
