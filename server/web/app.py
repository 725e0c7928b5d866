"""The FastAPI application: `create_app()` and the lifespan that owns store, manager and hub."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from gradscope.server import STATIC_DIR
from gradscope.server.runs.ingest import Ingest
from gradscope.server.runs.manager import RunManager
from gradscope.server.settings import Settings
from gradscope.server.store import Store
from gradscope.server.stream.hub import Hub
from gradscope.server.web import docs, errors, pages, security
from gradscope.server.web.api import (
    compare,
    datasets,
    graph,
    history,
    ingest,
    interventions,
    landscape,
    predict,
    presets,
    runs,
    sweeps,
    ws,
)
from gradscope.server.web.limits import BodyLimitMiddleware, SlidingWindow

log = logging.getLogger("gradscope")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the store opens and the run manager and hub start in the lifespan."""
    settings = settings or Settings.from_env()
    if security.token_required(settings) and not settings.token:
        # `gradscope serve` makes and prints the token; another server running the app
        # only has the log to show it.
        settings = security.with_token(settings)
        log.warning("Gradscope needs a token here: open %s", security.start_urls(settings)[0])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.data_dir)
        manager = RunManager(store, settings)
        hub = Hub(store, settings)
        app.state.settings, app.state.store = settings, store
        app.state.manager, app.state.hub = manager, hub
        app.state.ingest = Ingest(store, settings)  # runs trained elsewhere (client.py)
        await manager.start()
        await hub.start()
        await app.state.ingest.start()
        try:
            yield
        finally:
            await app.state.ingest.close()
            await hub.close()
            await manager.close()
            store.close()

    app = FastAPI(
        title="Gradscope",
        description="Watch a neural network learn: runs, metrics and live streams.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by docs.router from the vendored Swagger UI
        redoc_url=None,  # ReDoc would load from a CDN: /docs is the one offline viewer
    )

    errors.install(app)  # every error type's status, JSON for the API, a page for pages
    app.include_router(presets.router)
    app.include_router(runs.router)
    app.include_router(history.router)
    app.include_router(compare.router)
    app.include_router(graph.router)
    app.include_router(landscape.router)
    app.include_router(interventions.router)
    app.include_router(datasets.router)
    app.include_router(sweeps.router)
    app.include_router(ingest.router)
    app.include_router(ws.router)
    app.include_router(predict.router)
    app.include_router(pages.router)
    app.include_router(docs.router)
    docs.with_settings_limits(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.run_rate = SlidingWindow(settings.max_runs_per_minute)
    # The last added runs first: CORS (answers preflights), then security, then body size.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(security.SecurityMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return app
