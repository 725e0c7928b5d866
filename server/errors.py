"""What can go wrong with a request, by meaning; the web layer alone turns each into a status.

Each area names its own errors (`RunError`, `ModelError`, `DigitError`, ...) and marks each
with one of these meanings, e.g. `class UnknownModel(ModelError, NotFound)`. None of them
knows HTTP: `gradscope.server.web.errors` maps the meanings to statuses in one table.
"""

from __future__ import annotations


class GradscopeError(Exception):
    """A request Gradscope cannot serve; `message` says why, in words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(GradscopeError):
    """What the request names does not exist."""


class Conflict(GradscopeError):
    """It exists, but its state does not allow this now."""


class Invalid(GradscopeError):
    """The input is malformed or out of range."""


class TooLarge(GradscopeError):
    """The input is over a size limit."""


class Unsupported(GradscopeError):
    """The input is of a kind Gradscope does not take."""


class Busy(GradscopeError):
    """A capacity limit is reached; the same request may succeed later."""


class Unavailable(GradscopeError):
    """A part Gradscope needs is missing or broken."""


class TimedOut(GradscopeError):
    """Another process did not answer in time."""
