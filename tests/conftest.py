"""Shared fixtures: the real MNIST files (../shared/mnist beside the checkout, or the env)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gradscope.engine.mnist import FILES

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
