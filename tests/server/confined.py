"""A `gradscope serve` under real operating-system limits, for the fault tests.

`ConfinedServer` is conftest's `Server` whose process (and so every worker it spawns)
starts with extra `subprocess.Popen` arguments: a file-size limit (RLIMIT_FSIZE, what
`ulimit -f` sets: the kernel refuses every write past it, as a full disk does), or, when
the tests run as root, without the capabilities that let root write through any file mode
(so that a folder made read-only with chmod stops the server as it stops any user).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.server.conftest import Server

# Linux: prctl(PR_CAPBSET_DROP) and the capabilities that let root ignore file modes.
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3


def _drop_root_file_powers() -> None:
    """In the child, before exec: drop the capabilities that let root write anywhere.

    They leave the bounding set, so the exec'd server (still uid 0, so it can run the
    interpreter under /root) and every worker it spawns never get them back: file modes
    apply to it as to its owner.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def as_unprivileged() -> dict[str, Any]:
    """Popen arguments under which chmod binds the server (nothing needed for a non-root)."""
    if os.geteuid() != 0:
        return {}
    return {"preexec_fn": _drop_root_file_powers}


def file_size_limit(limit: int) -> Callable[[], None]:
    """A preexec_fn capping every file the process writes at `limit` bytes.

    Python ignores SIGXFSZ, so a write past the limit fails with EFBIG instead of killing
    the process; spawned workers inherit both the limit and the ignored signal.
    """

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def serve_command(port: int, data_dir: Path) -> list[str]:
    """`gradscope serve` on a port and a data folder, as conftest's Server runs it."""
    return [
        sys.executable,
        "-m",
        "gradscope.server.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


class ConfinedServer(Server):
    """conftest's Server, started with extra Popen arguments (user, preexec_fn, ...)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, **popen: Any) -> None:
        super().__init__(data_dir, env)
        self.popen = popen

    def popen_kwargs(self) -> dict[str, Any]:
        return self.popen
