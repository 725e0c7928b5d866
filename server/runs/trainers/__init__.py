"""Trainers for run configs: build_trainer picks the engine, loads the data, builds the model.

The pieces: base.py (the clock, the data order, the numpy-built events), scalar.py (the
articles' Value engine), tensor.py (engine.nn), with ../data.py (data sets and targets),
../recording.py (event helpers) and ../events.py (what each event holds) beneath them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradscope.engine.mnist import MIRRORS, Progress
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.data import load_run_data
from gradscope.server.runs.trainers.base import Trainer, TrainingDiverged
from gradscope.server.runs.trainers.scalar import ScalarTrainer
from gradscope.server.runs.trainers.tensor import TensorTrainer

__all__ = ["ScalarTrainer", "TensorTrainer", "Trainer", "TrainingDiverged", "build_trainer"]


def build_trainer(
    config: RunConfig,
    mnist_dir: Path | None = None,
    mirrors: Sequence[str] = MIRRORS,
    progress: Progress | None = None,
    data_dir: Path | None = None,
) -> Trainer:
    """A ready trainer at step 0 (MNIST from mnist_dir, else engine.data's default place;
    missing files are fetched from `mirrors`, with `progress` told how far each got; an
    uploaded set from data_dir)."""
    # The scalar engine computes in Python floats: keep its data in float64, exact.
    dtype = np.float64 if config.engine == "scalar" else np.float32
    data = load_run_data(config, mnist_dir, dtype, mirrors, progress, data_dir)
    return ScalarTrainer(config, data) if config.engine == "scalar" else TensorTrainer(config, data)
