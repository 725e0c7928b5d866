"""Domain errors say what went wrong by type; one table (web/errors.py) gives each its status.

Also: run controls reach the worker as an enum's values, not as strings picked by name.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from multiprocessing import Pipe
from pathlib import Path

import pytest

from gradscope.server.digits import preprocess as digits
from gradscope.server.digits.models import BrokenModel, UnknownModel, UnusableModel
from gradscope.server.errors import GradscopeError
from gradscope.server.runs.config import ConfigError
from gradscope.server.runs.control import Control, Worker
from gradscope.server.runs.errors import QueueFull, RunConflict, UnknownRun, WorkerTimeout
from gradscope.server.runs.manager import RunManager
from gradscope.server.settings import Settings
from gradscope.server.store import Store, StoreError
from gradscope.server.web.errors import detail_of, status_of

EXPECTED = [
    (UnknownRun("0123456789ab"), 404),
    (RunConflict("cannot pause a run that is finished"), 409),
    (QueueFull("the queue is full"), 429),
    (WorkerTimeout("the worker did not answer 'pause' in time"), 504),
    (UnknownModel("no model 'x'"), 404),
    (UnusableModel("run x is running"), 409),
    (BrokenModel("the bundled model cannot be loaded"), 503),
    (digits.InvalidDigit("nothing drawn"), 422),
    (digits.DigitTooLarge("the image is too large"), 413),
    (ConfigError("optimizer.lr", "must be > 0"), 422),
    (StoreError("disk is full"), 503),
]


def _subclasses(cls: type) -> set[type]:
    return {cls} | {s for sub in cls.__subclasses__() for s in _subclasses(sub)}


@pytest.mark.parametrize("error,status", EXPECTED, ids=lambda v: type(v).__name__)
def test_each_error_type_maps_to_its_status(error: Exception, status: int) -> None:
    assert status_of(error) == status


def test_no_domain_error_carries_an_http_status() -> None:
    for cls in _subclasses(GradscopeError):
        assert "status" not in vars(cls) and "status_code" not in vars(cls), cls
    for error, _ in EXPECTED:
        assert not hasattr(error, "status"), type(error)


def test_every_raisable_domain_error_has_a_meaning() -> None:
    # The leaves are what code raises; each one is a NotFound, a Conflict, ... (not a 500).
    leaves = [c for c in _subclasses(GradscopeError) if not c.__subclasses__()]
    assert {type(e) for e, _ in EXPECTED if isinstance(e, GradscopeError)} <= set(leaves)
    for cls in leaves:
        # Some name their field first (ConfigError, BadSweep): as many words as they take.
        args = len(inspect.signature(cls.__init__).parameters) - 1
        error = cls(*["x", "y"][-args:])
        assert status_of(error) != 500, cls
    assert status_of(RuntimeError("a bug")) == 500  # unmapped: a bug, not a client error


def test_a_config_error_names_its_field_in_the_body() -> None:
    detail = detail_of(ConfigError("optimizer.lr", "must be > 0"))
    assert detail == [
        {
            "loc": ["body", "config", "optimizer", "lr"],
            "msg": "must be > 0",
            "type": "value_error",
            "field": "optimizer.lr",
        }
    ]
    assert detail_of(ConfigError("preset", "unknown"))[0]["loc"] == ["body", "preset"]
    assert detail_of(StoreError("disk is full")) == "the run store failed: disk is full"
    assert detail_of(UnknownRun("0123456789ab")) == "no run with id '0123456789ab'"


# -- controls ----------------------------------------------------------------------------


class _Alive:
    """A stand-in for the worker process: alive, and never joined."""

    def is_alive(self) -> bool:
        return True


def _manager(tmp_path: Path, command_timeout: float = 30.0) -> tuple[RunManager, Store]:
    store = Store(tmp_path)
    return RunManager(store, Settings(data_dir=tmp_path, command_timeout=command_timeout)), store


@pytest.mark.parametrize(
    "control,n,sent",
    [
        (Control.PAUSE, 0, ("pause",)),
        (Control.RESUME, 0, ("resume",)),
        (Control.STOP, 0, ("stop",)),
        (Control.STEP, 5, ("step", 5)),
    ],
)
def test_a_control_travels_as_plain_values_and_waits_for_its_ack(
    tmp_path: Path, control: Control, n: int, sent: tuple
) -> None:
    manager, store = _manager(tmp_path)
    ours, theirs = Pipe()
    manager.workers["0123456789ab"] = Worker("0123456789ab", _Alive(), ours)  # type: ignore[arg-type]
    received: list[tuple] = []

    def worker() -> None:
        if theirs.poll(30):
            received.append(theirs.recv())
            theirs.send(("ack", received[0][0]))

    t = threading.Thread(target=worker)
    t.start()
    try:
        asyncio.run(manager._command("0123456789ab", control, *((n,) if n else ())))
    finally:
        t.join(30)
        store.close()
    assert received == [sent]
    assert type(received[0][0]) is str  # the pipe carries no enum: plain data


def test_a_worker_that_never_answers_times_out(tmp_path: Path) -> None:
    manager, store = _manager(tmp_path, command_timeout=0.05)
    ours, theirs = Pipe()
    manager.workers["0123456789ab"] = Worker("0123456789ab", _Alive(), ours)  # type: ignore[arg-type]
    try:
        with pytest.raises(WorkerTimeout, match="did not answer 'pause' in time"):
            asyncio.run(manager._command("0123456789ab", Control.PAUSE))
    finally:
        theirs.close()
        store.close()


def test_a_control_without_a_worker_is_a_conflict(tmp_path: Path) -> None:
    manager, store = _manager(tmp_path)
    try:
        with pytest.raises(RunConflict, match="no live worker"):
            asyncio.run(manager._command("0123456789ab", Control.STOP))
        with pytest.raises(UnknownRun):
            asyncio.run(manager.pause("0123456789ab"))
    finally:
        store.close()
