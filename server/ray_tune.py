"""Sweeps on a Ray cluster: each run of a sweep is a Ray Tune function trainable that trains
with our engine and streams its metrics to the server with the logging client (client.py),
so the dashboard shows the trials live.

The server made the sweep's runs (POST /api/sweeps with executor "ray": external runs,
queued); a trial attaches to its run, which starts running, logs each step's loss and each
epoch's test figures, and finishes it. A trial killed on the Ray side cannot say so: the
driver marks its run failed once Tune reports the trial's error, and if the driver is gone
too, the server's reaper marks it crashed when its heartbeats stop (runs/ingest.py).
Ray is an optional extra: pip install 'gradscope[ray]'. Every machine of the cluster needs
gradscope installed, and must reach the server's URL.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import Any

from gradscope.server.client import ClientError, Http, Run

REPORT_EVERY = 1.0  # seconds between a trial's reports to Tune


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SystemExit(
            "gradscope sweep --ray needs Ray on this machine: pip install 'gradscope[ray]'"
        ) from None
    return ray


def run_sweep(
    sweep: dict[str, Any], address: str, url: str, token: str | None, cpus: int = 2
) -> dict[str, str | None]:
    """Run a sweep's trials on Ray (`local`: a Ray instance started here with `cpus` CPUs);
    each run's id and the error of its trial (None: it ended by itself)."""
    ray = _ray()
    from ray import tune

    trials = [{"run_id": r["id"], "config": r["config"]} for r in sweep["runs"]]
    local = address == "local"
    # The dashboard is the trials' logger: Tune's CSV, JSON and TensorBoard files would only
    # slow each report (set the variable to 0 to have them).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if local:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private instance
    ray.init(
        address="local" if local else address,
        num_cpus=cpus if local else None,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="gradscope-ray-") as storage:
            tuner = tune.Tuner(
                tune.with_parameters(train_trial, url=url, token=token),
                param_space={"trial": tune.grid_search(trials)},
                run_config=tune.RunConfig(
                    name=f"gradscope-sweep-{sweep['id']}",
                    storage_path=storage,
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
            results = tuner.fit()
            errors = {r.config["trial"]["run_id"]: r.error for r in results}
    finally:
        ray.shutdown()
    http = Http(url, token)
    for run_id, error in errors.items():
        if error is None:
            continue
        message = f"its Ray trial failed: {type(error).__name__}: {error}"[:2000]
        with contextlib.suppress(ClientError):  # already ended (by the trial itself): as it is
            http.request(
                "POST", f"/api/ingest/runs/{run_id}/finish", {"state": "failed", "message": message}
            )
    http.close()
    return {run_id: None if e is None else str(e) for run_id, e in errors.items()}


def train_trial(config: dict[str, Any], url: str, token: str | None) -> None:
    """A Ray Tune function trainable: one sweep run, trained here, streamed to the server."""
    from ray import tune

    from gradscope.server.runs.config import RunConfig
    from gradscope.server.runs.trainers import build_trainer
    from gradscope.server.settings import Settings

    trial = config["trial"]
    run_config = RunConfig.model_validate(trial["config"])
    settings = Settings.from_env()
    with Run(run_id=trial["run_id"], url=url, token=token) as run:
        trainer = build_trainer(run_config, settings.mnist_dir, settings.mnist_mirrors)
        per_epoch, reported = trainer.steps_per_epoch, 0.0
        while trainer.step < trainer.total_steps:
            loss = float(trainer.train_step())
            step = trainer.step
            run.log({"train_loss": loss}, step=step, epoch=step // per_epoch)
            if step % per_epoch == 0 or step == trainer.total_steps:
                figures = epoch_figures(trainer)
                run.log(figures, step=step, epoch=figures["epoch"])
                # Tune's own record (its schedulers, its results) at most once a second: a
                # report costs far more than a small net's epoch of two steps.
                if time.monotonic() - reported >= REPORT_EVERY or step == trainer.total_steps:
                    tune.report({"train_loss": loss, **figures})
                    reported = time.monotonic()


def epoch_figures(trainer: Any) -> dict[str, Any]:
    """The trainer's epoch-end test figures (its metrics event's data)."""
    for event in trainer.epoch_events():
        if event["type"] == "metrics":
            return dict(event["data"])
    raise RuntimeError("the trainer made no epoch metrics")
