"""Whether the process that owns a run (a worker, a server, `gradscope train`) still lives."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    """Is pid a live process other than this one? A zombie (exited, not reaped) is not."""
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # the state follows the parenthesised name, which may itself hold ") "
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc here: kill's answer stands
