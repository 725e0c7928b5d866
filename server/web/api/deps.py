"""`Annotated` dependencies: the objects the app's lifespan owns."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from gradscope.server.runs.manager import RunManager
from gradscope.server.settings import Settings
from gradscope.server.store import RunRecord, Store
from gradscope.server.stream.hub import Hub
from gradscope.server.web.limits import SlidingWindow

RUN_ID_PATTERN = r"^[0-9a-f]{12}$"
# The largest SQLite INTEGER: a seq or step beyond it overflows the driver (a 500 before).
SQLITE_MAX_INT = 2**63 - 1


async def get_store(conn: HTTPConnection) -> Store:
    return conn.app.state.store


async def get_manager(conn: HTTPConnection) -> RunManager:
    return conn.app.state.manager


async def get_hub(conn: HTTPConnection) -> Hub:
    return conn.app.state.hub


async def get_settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


async def get_run_rate(conn: HTTPConnection) -> SlidingWindow:
    return conn.app.state.run_rate


StoreDep = Annotated[Store, Depends(get_store)]
ManagerDep = Annotated[RunManager, Depends(get_manager)]
HubDep = Annotated[Hub, Depends(get_hub)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RunRateDep = Annotated[SlidingWindow, Depends(get_run_rate)]


def existing_run(run_id: str, store: StoreDep) -> RunRecord:
    """The run named in the path, or 404."""
    import re

    run = store.get_run(run_id) if re.fullmatch(RUN_ID_PATTERN, run_id) else None
    if run is None:
        raise HTTPException(404, f"no run with id {run_id!r}")
    return run


RunDep = Annotated[RunRecord, Depends(existing_run)]
