"""The training loop that turns a Trainer's steps into events in the store.

It runs in a spawned worker process for server runs (worker.py; commands arrive over a
Pipe) and in the foreground for `gradscope train`. Events are buffered and committed in one
transaction every `flush_interval` seconds, so writing never throttles training, and a
step's events are always committed together: the store only ever holds whole steps. The
loop hands the store plain events (events.py); how they are encoded is the store's choice.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from gradscope.server.runs import fork
from gradscope.server.runs.commands import Commands, Stopped
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.control import Control
from gradscope.server.runs.events import CheckpointData, NewEvent, StepLoss, new_event
from gradscope.server.runs.trainers import Trainer, TrainingDiverged
from gradscope.server.store import Store

# Recording snapshots may take this share of training time; k adapts to stay under it.
RECORD_BUDGET = 0.01
# How often a worker looks at its command pipe while running (seconds).
COMMAND_POLL = 0.005
# A paced run records a frame every step up to this many a second (a display's rate).
MAX_FRAMES_PER_SECOND = 60
# A paced run that falls this far behind its schedule (seconds) starts a new one rather
# than rushing to catch up.
PACE_SLACK = 0.5
MAX_RECORD_EVERY = 10_000
KEEP_CHECKPOINTS = 2
# Without record.checkpoint_every, a checkpoint is taken after this many seconds of training.
CHECKPOINT_INTERVAL = 10.0


class TrainingLoop(Commands):
    """Drive one run: steps, recording cadence, checkpoints, flushes; its commands
    (pause/step/stop/pace/set) are handled by `Commands`."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        trainer: Trainer,
        config: RunConfig,
        control: Connection | None = None,
        on_progress: Callable[[TrainingLoop], None] | None = None,
        flush_interval: float = 0.1,
    ) -> None:
        self.store, self.run_id, self.trainer, self.config = store, run_id, trainer, config
        self.control, self.on_progress = control, on_progress
        self.flush_interval = flush_interval
        # Events for the next commit, in order; a step's metrics event as its StepLoss
        # tuple. Cleared in place: the training loop holds this list.
        self.buffer: list[NewEvent | StepLoss] = []
        self.fixed_every = config.record.every
        self.record_every = self.fixed_every or 1
        self.checkpoint_every = config.record.checkpoint_every
        self.last_checkpoint = time.perf_counter()
        self.last_record = -1  # no frame yet: the start gets one
        self.pace: float | None = None
        self.set_pace(config.pace)
        self.step_time = 0.0  # moving average of seconds per step
        self.last_loss = math.nan
        self.last_metrics: dict[str, Any] = {}
        self.paused = config.start_paused
        self.pending_steps = 0
        self.run_fields: dict[str, Any] = {}
        self.checkpoints: list[str] = []
        self.committed_step = 0  # the run row's step (the store's, on a resume)

    # -- events -------------------------------------------------------------------
    def emit(self, events: list[NewEvent]) -> None:
        """Buffer events (stamped with the wall time) for the next flush."""
        now = time.time()
        for e in events:
            e.setdefault("t", now)
            self.buffer.append(e)

    def flush(self) -> None:
        """Commit the buffered events and the run's counters in one transaction."""
        fields = dict(self.run_fields)
        if self.trainer.step >= self.committed_step:
            # Never move the run's counters back: a resume that fails before its checkpoint
            # is restored (the trainer still at step 0) must not reset the run's step.
            fields.update(step=self.trainer.step, epoch=self.trainer.epoch)
            self.committed_step = self.trainer.step
        self.store.append_events(self.run_id, self.buffer, fields)
        self.buffer.clear()
        self.run_fields = {}
        self.last_flush = time.perf_counter()
        # Files older than the newest KEEP_CHECKPOINTS may go now that the run row, just
        # committed, points at a newer one.
        if len(self.checkpoints) > KEEP_CHECKPOINTS:
            self._remove_checkpoints(self.checkpoints[:-KEEP_CHECKPOINTS])
            del self.checkpoints[:-KEEP_CHECKPOINTS]

    def set_state(self, state: str, **kwargs: Any) -> None:
        self.flush()
        self.store.set_state(self.run_id, state, **kwargs)

    # -- the loop -----------------------------------------------------------------
    def run(self, resume: bool = False) -> str:
        """Train to the end (or until stopped); returns the final state."""
        self.last_flush = time.perf_counter()
        try:
            record = self.store.get_run(self.run_id)
            if record is None or record.state != "queued":
                # Stopped or deleted while this worker was starting: leave it as it is.
                return record.state if record is not None else "deleted"
            if resume:
                self.committed_step, self.paused = record.step, False
                self._restore()
            elif record.parent_id is not None and record.fork_step is not None:
                # A fork: its parent's state at the fork step, then its own start.
                self.committed_step = record.step
                fork.restore(self.store, self.trainer, record, record.fork_step)
                self.emit(self.trainer.start_events())
                self._checkpoint()  # its own first state: a resume (or its forks) start here
            else:
                self.emit(self.trainer.start_events())
            self._record()  # the frame before the first step (or the restored one)
            self.flush()
            state = "paused" if self.paused else "running"
            if not self.store.set_state(self.run_id, state, only_from={"queued"}):
                record = self.store.get_run(self.run_id)
                return record.state if record is not None else "deleted"
            self._train()
            if not self.trainer.epoch_finished() and self.trainer.step > 0:
                # Ended mid-epoch: the final test figures, so every run ends with them.
                self._epoch_end()
            self._record()
            self._checkpoint()
            self.set_state("finished")
            return "finished"
        except Stopped as s:
            if s.state == "stopped":
                self._record()  # the frame the run stopped at
                self._checkpoint()
            self.set_state(s.state, message=s.message)
            return s.state
        except TrainingDiverged as e:
            self.set_state("failed", message=str(e.message), op=e.op)
            return "failed"
        except KeyboardInterrupt:
            self._checkpoint()
            self.set_state("interrupted", message="interrupted from the keyboard (Ctrl-C)")
            return "interrupted"
        except Exception as e:
            fields = {"message": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            try:
                self.set_state("failed", **fields)
            except Exception:
                # The store itself failed (disk full, read-only): record the failure alone.
                self.buffer.clear()
                with contextlib.suppress(Exception):
                    self.store.set_state(self.run_id, "failed", **fields)
            return "failed"

    def _train(self) -> None:
        """Steps until the end, at full speed or at the pace, switching as the pace changes."""
        while self.trainer.step < self.trainer.total_steps:
            if self.pace is None:
                self._train_fast()
            else:
                self._train_paced()

    def _train_fast(self) -> None:
        trainer, clock, wall, steps = self.trainer, time.perf_counter, time.time, self.buffer
        total, per_epoch, control = trainer.total_steps, trainer.steps_per_epoch, self.control
        # The per-step work here is the step, its metrics tuple and three comparisons: on a
        # small net a step takes ~150 us, and everything the loop adds shows in the
        # throughput. Whatever is rarer (epoch ends, records, checkpoints, step acks,
        # commits) waits until the step reaches next_step or the clock next_time, both
        # recomputed by _between_steps; the command pipe is read every COMMAND_POLL.
        # The step before a frame is watched, so the frame's health shows that one update.
        next_poll, next_step, next_time, frame_at = 0.0, 0, 0.0, 0
        busy, busy_from = 0.0, trainer.step  # train_step seconds since busy_from
        loss = math.nan
        while trainer.step < total:
            t0 = clock()
            if t0 >= next_poll and control is not None:
                self._commands()
                if self.pace is not None:
                    break  # paced from here on
                t0 = clock()
                # Paused with steps to make: poll again after each one.
                next_poll = 0.0 if self.paused else t0 + COMMAND_POLL
                next_step = 0  # a command may have changed what is due
                frame_at = self._frame_at(trainer.step)
            trainer.watch = trainer.step + 1 >= frame_at
            loss = trainer.train_step()
            t1 = clock()
            busy += t1 - t0
            step = trainer.step
            steps.append((step, wall(), step // per_epoch, float(loss)))
            if step >= next_step or t1 >= next_time:
                self.step_time = busy / (step - busy_from) if step > busy_from else 0.0
                busy, busy_from = 0.0, step
                self.last_loss = loss
                next_step, next_time = self._between_steps(step, t1)
                frame_at = self._frame_at(step)
        if not math.isnan(loss):  # the last step's, if the loop made any
            self.last_loss = loss

    def _train_paced(self) -> None:
        """Steps at `pace` a second, each with its frame (up to MAX_FRAMES_PER_SECOND),
        committed at once; commands are answered while waiting. Steps asked for while paused
        are not paced: `step n` shows its result at once."""
        trainer, clock, pace, control = self.trainer, time.perf_counter, self.pace, self.control
        assert pace is not None
        start_t, start_step = clock(), trainer.step  # the schedule: step k at start + k / pace
        while trainer.step < trainer.total_steps:
            due = clock() if self.paused else start_t + (trainer.step - start_step) / pace
            if control is None:
                time.sleep(max(0.0, due - clock()))
            elif (self.paused and not self.pending_steps) or control.poll(max(0.0, due - clock())):
                self._commands()  # while paused without steps to make, waits for one
                if self.pace != pace:
                    return
                start_t, start_step = clock(), trainer.step  # a new schedule from here
                continue
            trainer.watch = True  # every step may be a frame: each shows its own update
            loss = trainer.train_step()
            step = trainer.step
            self.buffer.append((step, time.time(), step // trainer.steps_per_epoch, float(loss)))
            self.last_loss, recorded = loss, self.last_record
            self._between_steps(step, clock())
            if self.last_record != recorded:
                self.flush()  # the frame goes out now, not at the next flush interval
                if self.on_progress is not None:
                    self.on_progress(self)
            if clock() - (start_t + (step - start_step) / pace) > PACE_SLACK:
                start_t, start_step = clock(), step  # slower than the pace: no rush to catch up

    def _frame_at(self, step: int) -> int:
        """The next step after `step` whose frame is due on the cadence (or the last step)."""
        at = min(self.last_record + self.record_every, self.trainer.total_steps)
        if self._epoch_frames():
            per_epoch = self.trainer.steps_per_epoch
            at = min(at, (step // per_epoch + 1) * per_epoch)
        if self.pending_steps:
            at = min(at, step + self.pending_steps)
        return at

    def _epoch_frames(self) -> bool:
        """Does each epoch's end get a frame? When epochs are at least as long as the frame
        cadence: a small set's 13-step epochs would break the budget (or 60 frames/s)."""
        return self.trainer.steps_per_epoch >= self.record_every

    def set_pace(self, pace: float | None) -> None:
        """Steps per second from now on (None: full speed); what is computed never changes."""
        self.pace = None if pace is None else float(pace)
        if self.pace is None:
            self.record_every = self.fixed_every or 1  # the budget adapts it again
        else:
            self.record_every = max(1, math.ceil(self.pace / MAX_FRAMES_PER_SECOND))

    def _between_steps(self, step: int, t1: float) -> tuple[int, float]:
        """The rarer work due after `step`; returns when to come back (step, clock time)."""
        per_epoch, every = self.trainer.steps_per_epoch, self.checkpoint_every
        if step % per_epoch == 0:
            self._epoch_end()
            if self._epoch_frames():
                self._record()
        if step - self.last_record >= self.record_every:
            self._record()
        if every:
            if step % every == 0:
                self._checkpoint()
        elif t1 - self.last_checkpoint >= CHECKPOINT_INTERVAL:
            self._checkpoint()
        if self.pending_steps:
            self.pending_steps -= 1
            if self.pending_steps == 0:
                self._record()  # the frame of the step the run now waits at
                self._ack(Control.STEP)
        if t1 - self.last_flush >= self.flush_interval:
            self.flush()
            if self.on_progress is not None:
                self.on_progress(self)
        next_step = min((step // per_epoch + 1) * per_epoch, self.last_record + self.record_every)
        next_time = self.last_flush + self.flush_interval
        if every:
            next_step = min(next_step, (step // every + 1) * every)
        else:
            next_time = min(next_time, self.last_checkpoint + CHECKPOINT_INTERVAL)
        if self.pending_steps:
            next_step = step + 1
        return next_step, next_time

    def _epoch_end(self) -> None:
        events = self.trainer.epoch_events()
        self.emit(events)
        for e in events:
            if e["type"] == "metrics":
                self.last_metrics = dict(e["data"])

    def _record(self) -> None:
        """Take the every-k-steps snapshot and adapt k to keep it within budget."""
        if self.last_record == self.trainer.step:
            return
        t0 = time.perf_counter()
        # Encoded now, so that the budget below counts the encoding too: a boundary grid or
        # a graph's values cost more to encode than to compute.
        self.emit([self.store.encode(e) for e in self.trainer.record_events()])
        cost = time.perf_counter() - t0
        self.last_record = self.trainer.step
        if self.fixed_every is None and self.pace is None and self.step_time > 0:
            k = math.ceil(cost / (RECORD_BUDGET * self.step_time))
            self.record_every = max(1, min(MAX_RECORD_EVERY, k))

    def _checkpoint(self, again: bool = False) -> None:
        """Write a checkpoint of this step (`again`: even if one was, the model changed)."""
        step = self.trainer.step
        if self.checkpoints and self.checkpoints[-1] == f"step-{step}.npz":
            if not again:
                return
            self.checkpoints.pop()  # rewritten below, under the same name
        folder = self.store.checkpoint_dir(self.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"step-{step}.npz"
        self.trainer.save_checkpoint(folder / name)
        self.last_checkpoint = time.perf_counter()
        self.checkpoints.append(name)
        self.run_fields.update(checkpoint=name, checkpoint_step=step)
        self.emit([new_event("checkpoint", step, CheckpointData(file=name))])

    def _remove_checkpoints(self, names: list[str]) -> None:
        folder = self.store.checkpoint_dir(self.run_id)
        for name in names:
            with contextlib.suppress(OSError):
                (folder / name).unlink()

    def _restore(self) -> None:
        """Continue from the last checkpoint, re-training silently up to the last committed step."""
        record = self.store.get_run(self.run_id)
        if record is None:
            raise Stopped("failed", "the run was deleted")
        if record.checkpoint:
            path = self.store.checkpoint_dir(self.run_id) / record.checkpoint
            self.trainer.load_checkpoint(path)
            self.checkpoints.append(record.checkpoint)
        elif record.parent_id is not None and record.fork_step is not None:
            fork.restore(self.store, self.trainer, record, record.fork_step)
        if record.step == (record.fork_step or 0) and not self.store.events(
            self.run_id, limit=1, types=("graph", "dataset", "metrics")
        ):
            self.emit(self.trainer.start_events())  # it never really started
        # Training is deterministic given the checkpoint (data order depends on seed and
        # epoch only), so re-running the uncommitted-but-lost steps reproduces them exactly
        # and the history continues without a gap or a duplicate.
        while self.trainer.step < record.step:
            self.trainer.train_step()
