"""A worker's commands (control.py) as its training loop handles them: pause, resume, step n,
pace, set a weight (an intervention), stop. `TrainingLoop` (loop.py) mixes these in."""

from __future__ import annotations

import contextlib
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from gradscope.server.runs.control import Control
from gradscope.server.runs.events import InterventionData, new_event

# The parameter name a point edit travels under (Control.SET, POINT, [row] or [], [x1, x2,
# label]): the manager relays it as it does a weight's.
POINT = "point"

if TYPE_CHECKING:
    from gradscope.server.runs.trainers import Trainer


class Stopped(Exception):
    """The run was told to stop (or its server went away): leave the loop cleanly."""

    def __init__(self, state: str, message: str | None = None) -> None:
        super().__init__(state)
        self.state, self.message = state, message


class Commands:
    """The command half of TrainingLoop: what arrives on the pipe, and the acks it sends."""

    control: Connection | None
    trainer: Trainer
    paused: bool
    pending_steps: int
    last_record: int | None

    # -- commands -----------------------------------------------------------------
    def _commands(self) -> None:
        """Handle waiting commands; while paused, block until one arrives."""
        assert self.control is not None
        while True:
            if (not self.paused or self.pending_steps) and not self.control.poll():
                return  # nothing waiting, and nothing to wait for (or steps to make)
            try:
                if self.paused:
                    self.flush()
                command = self.control.recv()
            except (EOFError, OSError):
                # The server is gone: stop writing so a restarted server finds a clean run.
                raise Stopped(
                    "interrupted", "the server stopped while this run was active"
                ) from None
            self._handle(command)

    def _handle(self, command: tuple[Any, ...]) -> None:
        name = Control(command[0])
        if name is Control.PAUSE:
            if not self.paused:
                self.paused = True
                self._record()  # the frame of the step the run waits at
                self.set_state("paused")
            self._ack(name)
        elif name is Control.RESUME:
            if self.paused:
                self.paused = False
                self.set_state("running")
            self._ack(name)
        elif name is Control.STEP:
            n = int(command[1])
            if n <= 0 or not self.paused:
                self._ack(name)
                return
            remaining = self.trainer.total_steps - self.trainer.step
            self.pending_steps = min(n, remaining)
            if self.pending_steps == 0:
                self._ack(name)
        elif name is Control.PACE:
            self.set_pace(command[1])
            self._ack(name)
        elif name is Control.SET:
            self._ack(name, self._intervene(*command[1:]))
        elif name is Control.STOP:
            raise Stopped("stopped", "stopped by the user")

    def _intervene(self, param: str, index: list[int], value: Any) -> str | None:
        """Set one weight (or add or drag a point: param POINT, value [x1, x2, label]) of
        the paused run; None, or what was wrong (for the 4xx).

        The edit is an event, the step's frame is recorded again with the new weight, and the
        checkpoint is rewritten: a resume, a fork or an export all start from the edited state.
        """
        if not self.paused:
            return "state: the run is not paused (pause it, then set the weight)"
        try:
            if param == POINT:  # a training point: value is [x1, x2, label]
                data = self._edit_point(index, value)
            else:
                old = self.trainer.intervene(param, index, value)
                data = InterventionData(
                    what="weight", param=param, index=list(index), old=old, new=value
                )
        except ValueError as e:
            return str(e)
        self.emit([new_event("intervention", self.trainer.step, data)])
        if param == POINT:  # the boundary panel redraws the points from it
            self.emit([self.trainer.dataset_event()])
        self.last_record = None
        self._record()
        self._checkpoint(again=True)
        return None

    def _edit_point(self, index: list[int], value: Any) -> InterventionData:
        """Add (index []) or drag (index [row]) a training point; its intervention's data."""
        x1, x2, label = (float(v) for v in value)
        row, before, old = self.trainer.edit_point(index[0] if index else None, x1, x2, label)
        return InterventionData(
            what="point", param=POINT, index=[row], old=old, new=label,
            point=[x1, x2, label], moved_from=before,
        )  # fmt: skip

    def _ack(self, name: str, error: str | None = None) -> None:
        self.flush()
        if self.control is not None:
            with contextlib.suppress(OSError):
                self.control.send(("ack", name, self.trainer.step, error))
