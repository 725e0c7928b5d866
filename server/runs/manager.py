"""The run manager: a queue of runs, at most N worker processes, commands to them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
from collections import deque
from typing import Any

from gradscope.server.runs.checks import MnistCheck, is_gradscope, retryable, worker_alive
from gradscope.server.runs.config import RunConfig, resolve_config
from gradscope.server.runs.control import Control, Worker, wait_answer
from gradscope.server.runs.errors import (
    BadIntervention,
    QueueFull,
    RunConflict,
    UnknownRun,
    WorkerTimeout,
)
from gradscope.server.runs.worker import run_worker
from gradscope.server.settings import Settings
from gradscope.server.store import FINAL_STATES, RunRecord, Store, StoreError

log = logging.getLogger("gradscope.runs")
_spawn = mp.get_context("spawn")


class RunManager:
    """Starts queued runs in spawned workers and relays pause/resume/step/stop to them."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.workers: dict[str, Worker] = {}
        self.queue: deque[tuple[str, bool]] = deque()
        self._supervisor: asyncio.Task[None] | None = None
        self._unrecorded: list[Worker] = []  # exited workers whose end is not yet stored
        # One scheduling round at a time: a round awaits each worker's start, and a second
        # round meanwhile would see the slot still free (5 parallel creates, 5 workers).
        self._scheduling = asyncio.Lock()
        self.mnist = MnistCheck(settings)

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Recover what a previous server left behind, then start supervising."""
        # The server that ran our runs is gone, whatever its workers' pids say now; a live
        # `gradscope train` keeps its own.
        interrupted = self.store.mark_interrupted(ownerless={"server"})
        if interrupted:
            log.info("runs interrupted by the last server's end: %s", ", ".join(interrupted))
        for run in self.store.list_runs():
            if run.state == "queued" and run.source == "server":
                self.queue.appendleft((run.id, run.step > (run.fork_step or 0)))
        self._supervisor = asyncio.create_task(self._supervise())
        await self._schedule()

    async def close(self) -> None:
        """Shut down: workers see their pipe close and leave their runs `interrupted`."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for w in self.workers.values():
            w.conn.close()
        for w in list(self.workers.values()):
            await asyncio.to_thread(w.process.join, 10)
            if w.process.is_alive():
                w.process.kill()
                await asyncio.to_thread(w.process.join, 5)
            self._finalize(w)
        self.workers.clear()

    # -- requests -----------------------------------------------------------------
    def resolve(self, preset: str | None, overrides: dict[str, Any] | None) -> RunConfig:
        """A full config from a preset and overrides, within this server's limits."""
        return resolve_config(
            preset,
            overrides,
            max_parameters=self.settings.max_parameters,
            max_steps=self.settings.max_steps,
            max_memory_mb=self.settings.max_run_memory_mb,
            data_dir=self.settings.data_dir,
        )

    async def create(
        self,
        config: RunConfig,
        preset: str | None,
        name: str | None,
        fork: tuple[str, int] | None = None,
    ) -> RunRecord:
        """Store a new run and queue it; `fork` (parent id, step): a fork (fork.py)."""
        if config.dataset.name == "mnist":
            await asyncio.to_thread(self.mnist.check)
        if len(self.queue) >= self.settings.max_queue:
            raise QueueFull(
                f"the queue is full ({self.settings.max_queue} runs waiting, "
                "GRADSCOPE_MAX_QUEUE); try again when one of them starts",
            )
        try:
            run = self.store.create_run(
                config.model_dump(mode="json"),
                preset=preset,
                name=name or config.name,
                source="server",
                total_steps=config.total_steps(),
                fork=fork and (*fork, fork[1] // config.steps_per_epoch()),
            )
        except KeyError:
            raise UnknownRun(fork[0] if fork else "") from None  # deleted meanwhile
        self.queue.append((run.id, False))
        await self._schedule()
        return self.get(run.id)

    def get(self, run_id: str) -> RunRecord:
        run = self.store.get_run(run_id)
        if run is None:
            raise UnknownRun(run_id)
        return run

    async def pause(self, run_id: str) -> RunRecord:
        run = self.get(run_id)
        if run.state != "running" or run_id not in self.workers:
            raise RunConflict(f"cannot pause a run that is {run.state}")
        await self._command(run_id, Control.PAUSE)
        return self.get(run_id)

    async def resume(self, run_id: str) -> RunRecord:
        run = self.get(run_id)
        if run.source == "external":
            raise RunConflict("an external run is resumed by its own script (it logs again)")
        if run.state == "paused" and run_id in self.workers:
            await self._command(run_id, Control.RESUME)
        elif run.state in ("interrupted", "crashed") or retryable(run):
            if run_id not in self.workers and worker_alive(run.pid):
                # A worker of a killed server notices only at its next command poll; two
                # workers on one run would write its steps twice.
                raise RunConflict(
                    f"the run's last worker (pid {run.pid}) is still exiting; try again"
                )
            if not self.store.set_state(
                run_id,
                "queued",
                only_from={"interrupted", "crashed", "failed"},
                message="resuming from the last checkpoint",
            ):
                raise RunConflict("the run changed state; try again")
            self.queue.append((run_id, True))
            await self._schedule()
        else:
            raise RunConflict(f"cannot resume a run that is {run.state}")
        return self.get(run_id)

    async def step(self, run_id: str, n: int) -> RunRecord:
        run = self.get(run_id)
        if run.state != "paused" or run_id not in self.workers:
            raise RunConflict(f"can only step a paused run; this one is {run.state}")
        await self._command(run_id, Control.STEP, n)
        return self.get(run_id)

    async def set_pace(self, run_id: str, pace: float | None) -> RunRecord:
        """Change a run's pace (steps per second, None: full speed), live if it is training."""
        run = self.get(run_id)
        if run.state in FINAL_STATES:
            raise RunConflict(f"cannot change the pace of a run that is {run.state}")
        # The config holds the pace: a queued, interrupted or resumed run starts with it.
        self.store.update_run(run_id, config={**run.config, "pace": pace})
        if run_id in self.workers:
            await self._command(run_id, Control.PACE, pace)
        return self.get(run_id)

    async def intervene(
        self, run_id: str, param: str, index: list[int], value: float | list[float]
    ) -> int:
        """Set one weight of a paused run (or edit a point: param "point", value [x1, x2,
        label]); the step it was set at."""
        run = self.get(run_id)
        if run.state != "paused" or run_id not in self.workers:
            raise RunConflict(
                f"a weight is set on a paused run, and this one is {run.state}: pause it first"
            )
        answer = await self._command(run_id, Control.SET, param, index, value)
        if answer is None or answer[0] != "ack":
            raise RunConflict("the run's worker exited before setting the weight")
        _, _, step, error = answer
        if error is not None:
            if error.startswith("state: "):
                raise RunConflict(error.removeprefix("state: "))
            raise BadIntervention(error)
        return step

    async def stop(self, run_id: str) -> RunRecord:
        run = self.get(run_id)
        w = self.workers.get(run_id)
        if w is not None and run.state in ("running", "paused"):
            if w.lock.locked():
                # Another command (a long `step n`) holds the pipe's answer: send the stop
                # beside it (the worker reads commands between steps) and wait for the exit.
                with contextlib.suppress(OSError):
                    w.conn.send((Control.STOP.value,))
            else:
                await self._command(run_id, Control.STOP)
            await asyncio.to_thread(w.process.join, self.settings.command_timeout)
        elif run.state in ("queued", "interrupted", "crashed") or (
            run.source == "external" and run.state in ("running", "paused")
        ):
            # Not trained here (or not yet): recorded as stopped; an external script's next
            # batch is refused (server/runs/ingest.py).
            self.queue = deque(q for q in self.queue if q[0] != run_id)
            if not self.store.set_state(
                run_id,
                "stopped",
                message="stopped by the user",
                only_from={"queued", "interrupted", "crashed", "running", "paused"},
            ):
                raise RunConflict("the run changed state; try again")
        else:
            raise RunConflict(f"cannot stop a run that is {run.state}")
        return self.get(run_id)

    async def delete(self, run_id: str) -> None:
        run = self.get(run_id)
        self._no_forks(run_id)
        if (
            run.state in ("running", "paused")
            and run.source == "cli"
            and run_id not in self.workers
        ):
            raise RunConflict("this run is training in a `gradscope train` process; stop it there")
        if run.state in ("queued", "running", "paused"):
            await self.stop(run_id)
        elif run_id in self.workers:  # ended, its worker still exiting: let it go first
            await asyncio.to_thread(
                self.workers[run_id].process.join, self.settings.command_timeout
            )
        self.queue = deque(q for q in self.queue if q[0] != run_id)
        self._no_forks(run_id)  # again: one may have been made while it stopped
        self.store.delete_run(run_id)

    def _no_forks(self, run_id: str) -> None:
        """Refuse to delete a run that has forks: their history up to their fork step is its."""
        forks = self.store.forks_of(run_id)
        if forks:
            raise RunConflict(
                f"run {run_id} has {len(forks)} fork(s) ({', '.join(forks)}) reading its history"
                " up to their fork step: delete them first"
            )

    # -- internals ----------------------------------------------------------------
    async def _command(self, run_id: str, control: Control, *args: Any) -> tuple[Any, ...] | None:
        """Send a command (STEP with its n, PACE with its pace) and wait for the worker's
        answer (or its exit)."""
        w = self.workers.get(run_id)
        if w is None:
            raise RunConflict("the run has no live worker")
        # The pipe carries plain values: (name,), ("step", n), ("pace", pace) or
        # ("set", param, index, value).
        message = (control.value, *args)
        async with w.lock:
            try:
                w.conn.send(message)
            except OSError:
                raise RunConflict("the run's worker has exited") from None
            timeout = self.settings.command_timeout
            if control is Control.STEP:
                # Stepping takes as long as the steps do; allow for slow ones.
                timeout *= max(1.0, args[0] / 1000)
            answer = await asyncio.to_thread(wait_answer, w.conn, control, timeout)
            if answer is None and w.process.is_alive():
                raise WorkerTimeout(f"the worker did not answer {control.value!r} in time")
            return answer

    async def _schedule(self) -> None:
        """Start queued runs while there are free worker slots (GRADSCOPE_MAX_CONCURRENT)."""
        async with self._scheduling:
            await self._start_queued()

    async def _start_queued(self) -> None:
        while self.queue and len(self.workers) < self.settings.max_concurrent:
            run_id, resume = self.queue.popleft()
            run = self.store.get_run(run_id)
            if run is None or run.state != "queued":
                continue
            problem = self._unwritable()
            if problem is not None:
                # A worker could not record a single step: fail the run now, with the
                # reason, through the server's own (already open) connection.
                self.store.set_state(run_id, "failed", message=problem, only_from={"queued"})
                log.error("run %s failed: %s", run_id, problem)
                continue
            parent, child = _spawn.Pipe()
            mnist = str(self.settings.mnist_dir) if self.settings.mnist_dir else None
            mirrors = tuple(self.settings.mnist_mirrors)
            process = _spawn.Process(
                target=run_worker,
                name=f"gradscope-run-{run_id}",
                daemon=True,
                args=(run_id, str(self.store.data_dir), child, mnist, resume, mirrors),
            )
            await asyncio.to_thread(process.start)
            child.close()
            self.workers[run_id] = Worker(run_id, process, parent)
            self.store.update_run(run_id, pid=process.pid)
            log.info("run %s started in worker pid %s", run_id, process.pid)

    async def _supervise(self) -> None:
        """Notice workers that exited (normally or killed) and start the next runs; every
        second, `gradscope train` runs whose process is gone."""
        rounds = 0
        while True:
            await asyncio.sleep(0.1)
            rounds += 1
            try:
                if rounds % 10 == 0:
                    await asyncio.to_thread(self._reap_cli_runs)
                for run_id, w in list(self.workers.items()):
                    if not w.process.is_alive() and not w.lock.locked():
                        await asyncio.to_thread(w.process.join, 1)
                        del self.workers[run_id]
                        self._unrecorded.append(w)
                # A worker's end that could not be written (the disk was full) is retried
                # until it can: the run must not look active once its worker is gone.
                self._unrecorded = [w for w in self._unrecorded if not self._finalize(w)]
                await self._schedule()
            except Exception:
                # The store failed (disk full, read-only): keep supervising, the next
                # round may succeed; the failure is the affected run's, not the server's.
                log.exception("the run supervisor hit an error; carrying on")

    def _reap_cli_runs(self) -> None:
        """A `gradscope train` killed (kill -9, a lost terminal) cannot say so: its run is
        crashed once its pid is no live gradscope process, so it can be resumed here."""
        for run in self.store.list_runs():
            if run.source != "cli" or run.state not in ("running", "paused", "queued"):
                continue
            if run.id in self.workers or any(q[0] == run.id for q in self.queue):
                continue  # resumed here: our worker trains it now
            if run.pid is None or is_gradscope(run.pid):
                continue
            self.store.set_state(
                run.id,
                "crashed",
                only_from={"running", "paused", "queued"},
                message="its `gradscope train` process is gone; resume continues from the "
                "last checkpoint",
            )
            log.warning("run %s crashed: its gradscope train (pid %s) is gone", run.id, run.pid)

    def _unwritable(self) -> str | None:
        """Why a worker could not write to the data folder, or None when it can."""
        folder, db = self.store.data_dir, self.store.path
        if not os.access(folder, os.W_OK | os.X_OK):
            return (
                f"PermissionError: {folder}: the data folder is not writable (read-only?); "
                "the run cannot start (resume it once the folder is writable)"
            )
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if path.exists() and not os.access(path, os.W_OK):
                return (
                    f"PermissionError: {path}: the database file is read-only; the run cannot "
                    "start (resume it once the file is writable)"
                )
        return None

    def _finalize(self, w: Worker) -> bool:
        """A worker is gone: a run it left active has crashed (nothing committed is lost).

        False when the store could not record it (to be retried)."""
        with contextlib.suppress(OSError):
            w.conn.close()
        code = w.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        what = (
            "the worker process ended without recording how (the store failed?)"
            if code == 0
            else f"the worker process died ({how})"
        )
        try:
            crashed = self.store.set_state(
                w.run_id,
                "crashed",
                only_from={"queued", "running", "paused"},
                message=f"{what}; resume continues from the last checkpoint",
            )
        except StoreError as e:
            if not w.unrecorded:  # say it once, not on every retry
                w.unrecorded = True
                log.error("run %s: worker exited (%s); the store failed: %s", w.run_id, how, e)
            return False
        if crashed:
            log.warning("run %s crashed (%s)", w.run_id, how)
        return True
