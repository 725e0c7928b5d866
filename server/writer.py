"""A run's commits on a background thread, so SQLite's work overlaps the next steps.

The training thread hands over each flush's events and goes on training; the writer
commits them in order, one transaction per flush, exactly as a direct call would.
`sqlite3` releases the GIL while SQLite works, so on a machine with a spare core the
commit costs the training thread little. At most `max_pending` flushes wait (back
pressure: a crash still loses at most a few flush intervals). A failed commit is raised
on the training thread at its next submit or drain, and nothing after it is written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from server.store import Store


class BackgroundWriter:
    """Commit (events, run fields) batches for one run, in order, on its own thread."""

    def __init__(self, store: Store, run_id: str, max_pending: int = 2) -> None:
        self.store, self.run_id = store, run_id
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"writer-{run_id}", daemon=True)
        self._thread.start()

    def submit(
        self,
        events: list[dict[str, Any]],
        fields: dict[str, Any],
        then: Callable[[], None] | None = None,
    ) -> None:
        """Queue one commit; `then` runs on the writer thread once it is committed."""
        self.raise_error()
        self._queue.put((events, fields, then))

    def drain(self) -> None:
        """Wait until everything submitted is committed (or raise what failed)."""
        self._queue.join()
        self.raise_error()

    def close(self) -> None:
        """Commit what is queued and stop the thread (errors stay for raise_error)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a failure nothing more is written
                    events, fields, then = item
                    self.store.append_events(self.run_id, events, fields)
                    if then is not None:
                        then()
            except BaseException as exc:  # handed to the training thread
                self._error = exc
            finally:
                self._queue.task_done()
