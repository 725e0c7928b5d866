"""The FastAPI application: `create_app()` and the lifespan that owns store, manager and hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from server import pages
from server.api import predict, presets, runs, ws
from server.hub import Hub
from server.manager import RunManager
from server.settings import Settings
from server.store import Store, StoreError


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the store opens and the run manager and hub start in the lifespan."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.data_dir)
        manager = RunManager(store, settings)
        hub = Hub(store, settings)
        app.state.settings, app.state.store = settings, store
        app.state.manager, app.state.hub = manager, hub
        await manager.start()
        await hub.start()
        try:
            yield
        finally:
            await hub.close()
            await manager.close()
            store.close()

    app = FastAPI(
        title="Gradscope",
        description="Watch a neural network learn: runs, metrics and live streams.",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"the run store failed: {exc}"}, status_code=503)

    app.include_router(presets.router)
    app.include_router(runs.router)
    app.include_router(ws.router)
    app.include_router(predict.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.ROOT / "static"), name="static")
    return app
