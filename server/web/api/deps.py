"""`Annotated` dependencies: the objects the app's lifespan owns."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from gradscope.server.runs.errors import UnknownRun
from gradscope.server.runs.manager import RunManager
from gradscope.server.settings import Settings
from gradscope.server.store import RunRecord, Store
from gradscope.server.store.schema import RUN_ID
from gradscope.server.stream.hub import Hub
from gradscope.server.web.limits import SlidingWindow

RUN_ID_PATTERN = RUN_ID.pattern  # for path parameters and re.fullmatch
# The largest SQLite INTEGER: a seq or step beyond it overflows the driver (a 500 before).
SQLITE_MAX_INT = 2**63 - 1


async def get_store(conn: HTTPConnection) -> Store:
    """The run store the lifespan opened."""
    return conn.app.state.store


async def get_manager(conn: HTTPConnection) -> RunManager:
    """The run manager."""
    return conn.app.state.manager


async def get_hub(conn: HTTPConnection) -> Hub:
    """The event hub."""
    return conn.app.state.hub


async def get_settings(conn: HTTPConnection) -> Settings:
    """The app's settings."""
    return conn.app.state.settings


async def get_run_rate(conn: HTTPConnection) -> SlidingWindow:
    """The run-creation rate limit (GRADSCOPE_MAX_RUNS_PER_MINUTE)."""
    return conn.app.state.run_rate


StoreDep = Annotated[Store, Depends(get_store)]
ManagerDep = Annotated[RunManager, Depends(get_manager)]
HubDep = Annotated[Hub, Depends(get_hub)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RunRateDep = Annotated[SlidingWindow, Depends(get_run_rate)]


def find_run(store: Store, run_id: str) -> RunRecord:
    """The run with this id, or UnknownRun (a malformed id names no run either)."""
    run = store.get_run(run_id) if RUN_ID.fullmatch(run_id) else None
    if run is None:
        raise UnknownRun(run_id)
    return run


def existing_run(run_id: str, store: StoreDep) -> RunRecord:
    """The run named in the path, or UnknownRun (404)."""
    return find_run(store, run_id)


RunDep = Annotated[RunRecord, Depends(existing_run)]
