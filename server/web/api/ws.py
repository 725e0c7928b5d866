"""Websockets: /ws/runs/{id} (one run's events) and /ws/runs (run-list changes).

Protocol (docs/events.md; the messages are declared in server/runs/events.py): the server
sends {"kind": "hello", "run", "config", "last_seq", "steps_per_epoch", "history",
"frame"}: the run's whole history summarised (Store.history) and its latest frame, so a page
opens at once at any run length. Then {"kind": "events", "events": [...]} batches in seq
order, each event once: those after hello.last_seq, or after `since` for a client that
connects with ?since=SEQ > 0 (a reconnect resumes with no gap). A client may send
{"since": seq} at any time to be replayed from there; anything else is answered by a close
with code 1008 and the reason, and a message over GRADSCOPE_WS_MAX_MESSAGE_BYTES by a close
with code 1009.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.errors import UnknownRun
from gradscope.server.runs.messages import HelloMessage, History, RunsMessage
from gradscope.server.store import Store
from gradscope.server.store.series import kind_of
from gradscope.server.stream.hub import ListClient
from gradscope.server.web.api.deps import SQLITE_MAX_INT, HubDep, SettingsDep, StoreDep, find_run

router = APIRouter(tags=["websockets"])
CLOSE_UNKNOWN_RUN = 4404
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
# The hello's history: each metric at the loss chart's width; the other series (health
# figures, weights) share what is left of HELLO_BUCKETS, so the hello stays under ~1 MB
# however many series a run has (a bucket is ~70 bytes of JSON).
HELLO_POINTS = 1000
HELLO_BUCKETS = 10_000
MIN_POINTS = 100


def _parse_since(text: str | None) -> int:
    """The seq in a {"since": seq} message; ValueError naming the problem otherwise."""
    if text is None:
        raise ValueError("messages must be JSON text")
    try:
        msg = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("messages must be JSON") from None
    if not isinstance(msg, dict) or set(msg) != {"since"}:
        raise ValueError('the only message understood is {"since": <seq>}')
    since = msg["since"]
    if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= SQLITE_MAX_INT:
        raise ValueError('"since" must be an integer from 0 to 2**63 - 1')
    return since


def steps_per_epoch(config: dict) -> int | None:
    """The run's steps per epoch (RunConfig's), or None when its config no longer reads."""
    try:
        return RunConfig.model_validate(config).steps_per_epoch()
    except ValidationError:
        return None


def hello_history(store: Store, run_id: str) -> History:
    """Every series of the run, summarised for the hello (see HELLO_BUCKETS)."""
    names = store.series_names(run_id)
    metrics = [n for n in names if kind_of(n) == "metrics"]
    others = [n for n in names if kind_of(n) != "metrics"]
    history = store.history(run_id, metrics, points=HELLO_POINTS)
    if others:
        share = (HELLO_BUCKETS - HELLO_POINTS * len(metrics)) // len(others)
        points = min(HELLO_POINTS, max(MIN_POINTS, share))
        rest = store.history(run_id, others, history["from"], history["to"], points)
        history["series"].update(rest["series"])
    return history  # type: ignore[return-value]


def hello_text(store: Store, run_id: str) -> tuple[int, str]:
    """(last_seq, the hello as JSON) of a run; UnknownRun when there is none."""
    # The run row first: what happened after its last_seq streams live, so nothing is lost
    # (an event may then be both in the summary and live; never a gap).
    run = find_run(store, run_id)
    hello = HelloMessage(
        kind="hello",
        run=run.to_dict(),
        config=run.config,
        last_seq=run.last_seq,
        steps_per_epoch=steps_per_epoch(run.config),
        history=hello_history(store, run_id),
        frame=store.frame(run_id),  # type: ignore[typeddict-item]
    )
    return run.last_seq, json.dumps(hello, separators=(",", ":"))


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close(code=code, reason=reason[:120])


def _too_big(msg: dict, max_bytes: int) -> bool:
    """Whether a received message is over `max_bytes` (text counted as UTF-8)."""
    text = msg.get("text")
    if text is None:
        return len(msg.get("bytes") or b"") > max_bytes
    # A character is at most 4 bytes: only a long text needs encoding to be measured.
    return len(text) * 4 > max_bytes and len(text.encode("utf-8", "replace")) > max_bytes


async def _serve(
    ws: WebSocket,
    sender: asyncio.Task[None],
    on_text: Callable[[str | None], Awaitable[bool]],
    max_bytes: int,
) -> None:
    """Read client messages while `sender` streams; stop when either side is done."""
    try:
        while True:
            receive = asyncio.create_task(ws.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                receive.cancel()
                return  # the client went away while we were sending
            msg = receive.result()
            if msg["type"] == "websocket.disconnect":
                return
            # The server running the app may allow bigger messages than our setting does.
            if _too_big(msg, max_bytes):
                await _close(ws, CLOSE_TOO_BIG, f"messages are limited to {max_bytes:,} bytes")
                return
            if not await on_text(msg.get("text")):
                return
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


@router.websocket("/ws/runs/{run_id}")
async def run_stream(
    ws: WebSocket,
    run_id: str,
    store: StoreDep,
    hub: HubDep,
    settings: SettingsDep,
    since: Annotated[int, Query(ge=0, le=SQLITE_MAX_INT)] = 0,
) -> None:
    """The run's history and latest frame, then what the client has not seen, live."""
    await ws.accept()
    try:
        # Store reads and a JSON text of up to ~1 MB: off the event loop.
        last_seq, hello = await asyncio.to_thread(hello_text, store, run_id)
    except UnknownRun:
        await _close(ws, CLOSE_UNKNOWN_RUN, f"no run with id {run_id!r}")
        return
    await ws.send_text(hello)
    # A new page has the history: it gets what comes after it. A reconnect says what it has.
    client = hub.subscribe(run_id, since or last_seq)

    async def on_text(text: str | None) -> bool:
        try:
            client.restart(_parse_since(text))
        except ValueError as e:
            await _close(ws, CLOSE_POLICY, str(e))
            return False
        return True

    try:
        pump = asyncio.create_task(hub.pump(ws, client))
        await _serve(ws, pump, on_text, settings.ws_max_message_bytes)
        if client.gone:
            await _close(ws, CLOSE_UNKNOWN_RUN, f"run {run_id} was deleted")
    finally:
        hub.unsubscribe(client)


@router.websocket("/ws/runs")
async def run_list_stream(
    ws: WebSocket, store: StoreDep, hub: HubDep, settings: SettingsDep
) -> None:
    """The full run list, then each change as it happens."""
    await ws.accept()
    client = hub.subscribe_list()

    async def send_full() -> None:
        runs = await asyncio.to_thread(store.list_runs)
        full = RunsMessage(kind="runs", full=True, runs=[r.to_dict() for r in runs], deleted=[])
        await ws.send_json(full)

    async def pump(c: ListClient) -> None:
        await send_full()
        while True:
            text = await c.queue.get()
            if c.behind:
                c.behind = False
                while not c.queue.empty():
                    c.queue.get_nowait()
                await send_full()
            else:
                await ws.send_text(text)

    async def on_text(text: str | None) -> bool:
        await _close(ws, CLOSE_POLICY, "this stream takes no messages")
        return False

    try:
        await _serve(ws, asyncio.create_task(pump(client)), on_text, settings.ws_max_message_bytes)
    finally:
        hub.unsubscribe_list(client)
