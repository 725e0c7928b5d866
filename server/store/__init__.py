"""The SQLite store: the schema and its migrations, how events are encoded, and exports."""

from gradscope.server.store.db import Store
from gradscope.server.store.liveness import pid_alive
from gradscope.server.store.schema import (
    ACTIVE_STATES,
    DB_NAME,
    ERROR_STATES,
    FINAL_STATES,
    INTERRUPTED_MESSAGE,
    RESUMABLE_STATES,
    RUN_STATES,
    RunRecord,
    StoreError,
    check_run_id,
)

__all__ = [
    "ACTIVE_STATES",
    "DB_NAME",
    "ERROR_STATES",
    "FINAL_STATES",
    "INTERRUPTED_MESSAGE",
    "RESUMABLE_STATES",
    "RUN_STATES",
    "RunRecord",
    "Store",
    "StoreError",
    "check_run_id",
    "pid_alive",
]
