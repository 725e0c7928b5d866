"""Trainers for run configs: build_trainer picks the engine, loads the data, builds the model.

The pieces: base.py (the clock, the data order, the numpy-built events), scalar.py (the
articles' Value engine), tensor.py (engine.nn), with ../data.py (data sets and targets),
../recording.py (event helpers) and ../events.py (what each event holds) beneath them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.data import load_run_data
from gradscope.server.runs.trainers.base import Trainer, TrainingDiverged
from gradscope.server.runs.trainers.scalar import ScalarTrainer
from gradscope.server.runs.trainers.tensor import TensorTrainer

__all__ = ["ScalarTrainer", "TensorTrainer", "Trainer", "TrainingDiverged", "build_trainer"]


def build_trainer(config: RunConfig, mnist_dir: Path | None = None) -> Trainer:
    """A ready trainer at step 0 (MNIST from mnist_dir, else engine.data's default place)."""
    if config.engine == "scalar":
        # The scalar engine computes in Python floats: keep the data in float64, exact.
        return ScalarTrainer(config, load_run_data(config, mnist_dir, np.float64))
    return TensorTrainer(config, load_run_data(config, mnist_dir, np.float32))
