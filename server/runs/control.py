"""The commands the manager sends a worker over its pipe, as one enum both sides share."""

from __future__ import annotations

from enum import StrEnum


class Control(StrEnum):
    """A worker command; its value is what travels over the pipe and what the worker acks."""

    PAUSE = "pause"
    RESUME = "resume"
    STEP = "step"  # sent with the number of steps: (Control.STEP, n)
    STOP = "stop"
    PACE = "pace"  # sent with steps per second, or None for full speed: (Control.PACE, pace)
    # Set one weight of a paused run: (Control.SET, param, index, value); the ack carries
    # an error message (or None) after the step.
    SET = "set"
