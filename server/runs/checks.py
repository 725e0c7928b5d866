"""What the run manager checks about the world around a run: whether a pid is still one of
ours, whether a failure was the surroundings' (so resume may retry), and whether MNIST
can be had before an MNIST run is accepted."""

from __future__ import annotations

import math
import time
from pathlib import Path

from gradscope.engine import mnist
from gradscope.server.errors import Unavailable
from gradscope.server.settings import Settings
from gradscope.server.store import RunRecord, pid_alive


class DataUnavailable(Unavailable):
    """The run's data set is not on this machine and cannot be downloaded now."""


# A run failed by one of these failed for what was around it (a full disk, a read-only
# folder, missing data), not for what it computed: once that is fixed it can be resumed.
# The loop records a failure as "<exception type>: <message>".
RETRYABLE_ERRORS = (
    "OSError",
    "PermissionError",
    "FileNotFoundError",
    "StoreError",
    "MnistError",
)


def retryable(run: RunRecord) -> bool:
    """Did the run fail for its surroundings (I/O, missing data), so that resume may retry?"""
    cause = (run.error or "").split(":", 1)[0]
    return run.state == "failed" and run.error_op is None and cause in RETRYABLE_ERRORS


def _runs(pid: int | None, program: bytes, unknown: bool) -> bool:
    """Is pid a live process whose command line names `program` (not a reused pid)?
    `unknown` where /proc cannot tell."""
    if not pid_alive(pid):
        return False
    try:
        return program in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return unknown


def is_gradscope(pid: int) -> bool:
    """Is pid a live gradscope process? True where /proc cannot tell."""
    return _runs(pid, b"gradscope", unknown=True)


def worker_alive(pid: int | None) -> bool:
    """Is pid a live multiprocessing worker? False where /proc cannot tell."""
    return _runs(pid, b"multiprocessing", unknown=False)


class MnistCheck:
    """Refuses an MNIST run up front when the files are missing and cannot be fetched
    (rather than accept it and fail it in its worker with a wall of URLs)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._mirror: tuple[float, str | None] = (-math.inf, None)  # (when probed, mirror)

    def check(self) -> None:
        """Raise DataUnavailable when MNIST is missing and cannot be downloaded now."""
        folder = self.settings.mnist_dir or mnist.mnist_dir()
        missing = mnist.missing_files(folder)
        if not missing:
            return
        if self.settings.mnist_download:
            if time.monotonic() - self._mirror[0] > 60:  # one probe a minute at most
                self._mirror = time.monotonic(), mnist.reachable_mirror(self.settings.mnist_mirrors)
            if self._mirror[1] is not None:
                return  # the worker downloads them (11 MB), then trains
            why = "no download mirror answers from this machine"
        else:
            why = "downloading is off (GRADSCOPE_MNIST_DOWNLOAD=false)"
        raise DataUnavailable(
            f"MNIST is not in {folder}: put the four files there ({', '.join(mnist.FILES)}) "
            f"or set GRADSCOPE_MNIST_DIR to a folder that holds them ({why})"
        )
