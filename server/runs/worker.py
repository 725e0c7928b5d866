"""A spawned worker process: it trains one run with the TrainingLoop (loop.py), taking
pause/resume/step/stop commands from its server over a Pipe, then exits."""

from __future__ import annotations

import contextlib
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.loop import TrainingLoop
from gradscope.server.runs.trainers import build_trainer
from gradscope.server.store import Store


def run_worker(
    run_id: str, data_dir: str, control: Connection, mnist_dir: str | None, resume: bool
) -> None:
    """Entry point of a spawned worker process: train one run, then exit."""
    from gradscope.engine.perf import tune_malloc

    tune_malloc()
    store = Store(Path(data_dir))
    try:
        record = store.get_run(run_id)
        if record is None:
            return
        try:
            config = RunConfig.model_validate(record.config)
            trainer = build_trainer(config, Path(mnist_dir) if mnist_dir else None)
        except Exception as e:
            store.set_state(
                run_id,
                "failed",
                message=f"{type(e).__name__}: {e}",
                traceback=traceback.format_exc(),
            )
            return
        loop = TrainingLoop(store, run_id, trainer, config, control=control)
        state = loop.run(resume=resume)
        if state in ("stopped", "finished", "failed"):
            with contextlib.suppress(OSError):
                control.send(("done", state, trainer.step))
    finally:
        store.close()
