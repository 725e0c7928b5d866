"""The commands the manager sends a worker over its pipe, as one enum both sides share; the
manager's end of a worker (its process and pipe), and waiting for the worker's answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any


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


@dataclass
class Worker:
    """One live worker process and the pipe that carries its commands."""

    run_id: str
    process: BaseProcess
    conn: Connection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    unrecorded: bool = False  # its exit could not be written to the store yet


def wait_answer(conn: Connection, control: Control, timeout: float) -> tuple[Any, ...] | None:
    """Block (in a thread) until the worker acknowledges `control`, finishes, or goes away."""
    try:
        while conn.poll(timeout):
            msg = conn.recv()
            if msg[0] == "done" or (msg[0] == "ack" and msg[1] == control.value):
                return msg
    except (EOFError, OSError):
        return None
    return None
