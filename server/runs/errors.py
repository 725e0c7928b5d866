"""What can go wrong with a request about a run, each marked with its meaning (a status, in
server/web/errors.py): the manager, the forks, sweeps and the ingest API raise these."""

from __future__ import annotations

from gradscope.server.errors import Busy, Conflict, GradscopeError, Invalid, NotFound, TimedOut


class RunError(GradscopeError):
    """A request about a run that cannot be served."""


class UnknownRun(RunError, NotFound):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")


class RunConflict(RunError, Conflict):
    """The run's state does not allow this now."""


class QueueFull(RunError, Busy):
    """GRADSCOPE_MAX_QUEUE runs are already waiting."""


class WorkerTimeout(RunError, TimedOut):
    """The run's worker did not answer a command in time."""


class BadIntervention(RunError, Invalid):
    """An edit that names no weight of the model (its message starts with the field)."""
