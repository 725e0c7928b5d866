"""What `gradscope serve` makes sure of before it starts: it is the one server on its data
folder (an OS lock, held until the process ends), and the database there is sound.

A second server on one folder would mark the first's live runs interrupted and answer for
workers it does not own; a damaged database would take writes into a broken file. Both
are refused with a message that says what to do, and nothing is written.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from gradscope.server.store.schema import DB_NAME

LOCK_NAME = "server.lock"


class GuardError(RuntimeError):
    """The server must not start: the message says why and what to do."""


class DataDirLock:
    """An exclusive lock on data_dir/server.lock holding the owner's pid (flock: the OS
    drops it when the process dies, however it dies)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise GuardError naming the server that holds it."""
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GuardError(f"{folder}: cannot create the data folder ({exc})") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise GuardError(f"{folder}: the data folder is not writable")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise GuardError(f"{self.path}: cannot open the server's lock file ({exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise GuardError(
                f"another Gradscope server (pid {owner}) is using {self.path.parent}; stop it, "
                "or give this one another --data-dir (GRADSCOPE_DATA_DIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def check_database(data_dir: Path) -> None:
    """Raise GuardError if data_dir's database is damaged or unexpectedly empty; the file
    is only read (immutable: not even a -shm or -wal is made)."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return  # a new data folder
    size = path.stat().st_size
    recover = (
        f"move {path} aside to start afresh, or salvage what it holds with "
        f"`sqlite3 {path} .recover | sqlite3 recovered.db`"
    )
    if size == 0:
        raise GuardError(f"{path} is empty (0 bytes): its runs are gone; {recover}")
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True)
        try:
            verdict = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise GuardError(f"{path} cannot be read as a database ({e}); {recover}") from None
    if verdict != ["ok"]:
        detail = "; ".join(verdict[:3])
        raise GuardError(f"{path} is damaged (quick_check: {detail}); {recover}")
