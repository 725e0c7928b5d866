"""Shared fixtures: the real MNIST files (../shared/mnist beside the checkout, or the env).

BLAS runs on one thread in the tests: set here, before numpy is first imported, it holds for
this process and for every server and worker the tests start (they inherit the environment).
Several processes each spinning a BLAS thread per core on a small machine slow each other
many times over.
"""

from __future__ import annotations

import gc
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
def napkin_trained() -> tuple[NapkinAverage, list[float]]:
    """The first article's neuron after its 300 full-batch steps on the scalar engine, and
    the loss of each step. Those steps take the scalar engine seconds, so every test that
    checks them (the article's numbers, the tensor engine and the napkin preset against
    them) shares this one run; they only read it."""
    napkin = NapkinAverage()
    gc.disable()  # as the trainers do: the graphs are acyclic, and the scans cost half
    try:
        losses = napkin.train(300)
    finally:
        gc.enable()
    return napkin, losses
