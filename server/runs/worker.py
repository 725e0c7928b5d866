"""A spawned worker process: it trains one run with the TrainingLoop (loop.py), taking
pause/resume/step/stop commands from its server over a Pipe, then exits."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from gradscope.engine.mnist import MIRRORS, Progress
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.events import new_event
from gradscope.server.runs.loop import TrainingLoop
from gradscope.server.runs.trainers import build_trainer
from gradscope.server.store import Store


def _download_events(store: Store, run_id: str, step: int) -> Progress:
    """Records a data download's progress as `download` events, for the run page."""

    def report(name: str, done: int, total: int) -> None:
        event = new_event("download", step, {"file": name, "done": done, "total": total})
        store.append_events(run_id, [event])

    return report


def run_worker(
    run_id: str,
    data_dir: str,
    control: Connection,
    mnist_dir: str | None,
    resume: bool,
    mirrors: Sequence[str] = MIRRORS,
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
            progress = _download_events(store, run_id, record.step)
            trainer = build_trainer(
                config, Path(mnist_dir) if mnist_dir else None, mirrors, progress, Path(data_dir)
            )
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
