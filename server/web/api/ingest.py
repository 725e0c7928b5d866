"""/api/ingest: runs trained elsewhere send their metrics here (server/runs/ingest.py).

POST /api/ingest/runs creates an external run; POST /api/ingest/runs/{id}/events stores a
batch (or /ws/ingest/runs/{id}: one batch a message, each answered); heartbeat and finish
keep and end it. Every route takes the token when the server needs one (security.py).
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gradscope.server.errors import GradscopeError
from gradscope.server.runs.config import Text
from gradscope.server.runs.ingest import BadBatch, Ingest, create_external, parse_batch
from gradscope.server.web.api.deps import SQLITE_MAX_INT, SettingsDep, StoreDep, find_run
from gradscope.server.web.api.models import MAX_NAME, MAX_TAGS, Problem, Run, Tag
from gradscope.server.web.errors import detail_of, status_of

router = APIRouter(tags=["ingest"])
ERRORS = {code: {"model": Problem} for code in (400, 404, 409, 413, 422, 503)}
CLOSE_POLICY = 1008


class IngestRunCreate(BaseModel):
    """An external run: its name, its config as its script knows it, tags, steps planned."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: Text | None = Field(None, min_length=1, max_length=MAX_NAME)
    config: dict[str, Any] = Field(
        default_factory=dict, description="the script's hyperparameters (any JSON object)"
    )
    preset: Text | None = Field(None, max_length=100, description="a preset it follows, if any")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    total_steps: int = Field(0, ge=0, le=SQLITE_MAX_INT, description="steps planned (0: unknown)")
    pid: int | None = Field(None, ge=1, le=2**31, description="the script's process id")


class IngestRun(Run):
    """The external run, and how often its script should send a heartbeat when it sends
    nothing else (seconds)."""

    heartbeat: float


class Heartbeat(BaseModel):
    """The script is alive; optionally, its process id (a trial's, on its machine)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pid: int | None = Field(None, ge=1, le=2**31)


class IngestEvent(BaseModel):
    """One event: a metrics event (events.py) at a step, optionally with its wall time."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    type: Literal["metrics"] = "metrics"
    step: int = Field(ge=0, le=SQLITE_MAX_INT, strict=True)
    data: dict[str, Any] = Field(
        description='{"epoch", "train_loss"} (a step) or {"epoch", "test_loss", "test_acc"?, '
        '"train_acc"?} (an epoch); non-finite values as "nan", "inf", "-inf"'
    )
    t: float | None = Field(None, description="unix time (default: when it arrives)")


class IngestBatch(BaseModel):
    """A batch of events, stored once whatever number of times it is sent."""

    model_config = ConfigDict(extra="forbid", strict=True)
    batch_id: str = Field(
        min_length=1, max_length=64, description="the client's id of this batch (a uuid)"
    )
    events: list[IngestEvent] = Field(
        description="steps in order; at most GRADSCOPE_MAX_INGEST_EVENTS"
    )


class BatchAnswer(BaseModel):
    """What became of a batch: stored (accepted events) or already stored (duplicate)."""

    run_id: str
    batch_id: str
    accepted: int
    duplicate: bool
    step: int = Field(description="the run's last committed step")
    last_seq: int
    state: str


class IngestFinish(BaseModel):
    """How the script ended."""

    model_config = ConfigDict(extra="forbid", strict=True)
    state: Literal["finished", "failed", "stopped"] = "finished"
    message: Text | None = Field(None, max_length=2000)


def batch_error(e: BadBatch) -> HTTPException:
    """A 422 naming the batch's field, in the shape of FastAPI's own."""
    loc = ["body", *e.field.split(".")]
    return HTTPException(
        422, [{"loc": loc, "msg": e.reason, "type": "value_error", "field": e.field}]
    )


def _ingest(request: Request) -> Ingest:
    """The ingest service the lifespan started."""
    return request.app.state.ingest


@router.post("/api/ingest/runs", status_code=201, response_model=IngestRun, responses=ERRORS)
def create_run(
    body: IngestRunCreate, request: Request, store: StoreDep, settings: SettingsDep
) -> IngestRun:
    """Create an external run (source `external`, running): its script sends its metrics."""
    run = create_external(
        store,
        name=body.name,
        config=body.config,
        preset=body.preset,
        tags=list(dict.fromkeys(body.tags)),
        total_steps=body.total_steps,
        pid=body.pid,
    )
    return IngestRun(**run.to_dict(), heartbeat=heartbeat_every(settings.ingest_timeout))


def heartbeat_every(timeout: float) -> float:
    """How often a quiet script says it is alive: well within the reaper's timeout."""
    return max(0.2, min(10.0, timeout / 4))


@router.post("/api/ingest/runs/{run_id}/events", response_model=BatchAnswer, responses=ERRORS)
async def post_events(
    run_id: str, body: IngestBatch, request: Request, settings: SettingsDep, store: StoreDep
) -> BatchAnswer:
    """Store a batch of metrics events (at most GRADSCOPE_MAX_INGEST_EVENTS), all or none;
    a batch sent again (same batch_id, or steps all committed already) stores nothing."""
    find_run(store, run_id)  # an unknown or malformed id: 404
    events = [e.model_dump(exclude_none=True) for e in body.events]
    try:
        batch = parse_batch(body.batch_id, events, settings.max_ingest_events)
        return BatchAnswer(**await _ingest(request).append(run_id, batch))
    except BadBatch as e:
        raise batch_error(e) from None


@router.post("/api/ingest/runs/{run_id}/heartbeat", response_model=IngestRun, responses=ERRORS)
def heartbeat(
    run_id: str, request: Request, store: StoreDep, settings: SettingsDep, body: Heartbeat
) -> IngestRun:
    """The script is alive (a quiet one says so within GRADSCOPE_INGEST_TIMEOUT); a
    queued, crashed or interrupted external run is running again."""
    find_run(store, run_id)
    run = _ingest(request).heartbeat(run_id, body.pid)
    return IngestRun(**run.to_dict(), heartbeat=heartbeat_every(settings.ingest_timeout))


@router.post("/api/ingest/runs/{run_id}/finish", response_model=Run, responses=ERRORS)
def finish(run_id: str, body: IngestFinish, request: Request, store: StoreDep) -> Run:
    """End an external run: finished, failed (with its message) or stopped."""
    find_run(store, run_id)
    return Run(**_ingest(request).finish(run_id, body.state, body.message).to_dict())


@router.websocket("/ws/ingest/runs/{run_id}")
async def ingest_stream(ws: WebSocket, run_id: str, settings: SettingsDep) -> None:
    """Batches over a websocket: each message one batch (as POST .../events takes it),
    each answered in order with the BatchAnswer, or {"error": detail} for a refused one."""
    await ws.accept()
    ingest: Ingest = ws.app.state.ingest
    try:
        find_run(ingest.store, run_id)
    except GradscopeError as e:
        await ws.close(code=4404, reason=e.message[:120])
        return
    try:
        while True:
            text = await ws.receive_text()
            if len(text) > settings.ws_max_message_bytes:
                await ws.close(1009, f"messages are limited to {settings.ws_max_message_bytes:,}")
                return
            await ws.send_json(await _one_batch(ingest, run_id, text, settings.max_ingest_events))
    except WebSocketDisconnect:
        return
    except (KeyError, RuntimeError):  # not text; or closed under us
        await _quiet_close(ws)


async def _one_batch(ingest: Ingest, run_id: str, text: str, max_events: int) -> dict[str, Any]:
    try:
        body = IngestBatch.model_validate_json(text)
        events = [e.model_dump(exclude_none=True) for e in body.events]
        batch = parse_batch(body.batch_id, events, max_events)
        return BatchAnswer(**await ingest.append(run_id, batch)).model_dump()
    except ValidationError as e:
        errors = [{**_plain(err), "field": ".".join(map(str, err["loc"]))} for err in e.errors()]
        return {"error": errors[:5]}
    except BadBatch as e:
        return {"error": batch_error(e).detail}
    except GradscopeError as e:
        return {"error": detail_of(e), "status": status_of(e)}


def _plain(err: Any) -> dict[str, Any]:
    return {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}


async def _quiet_close(ws: WebSocket) -> None:
    with contextlib.suppress(RuntimeError):
        await ws.close(code=CLOSE_POLICY, reason="messages must be JSON text")
