"""The hub: tails the store for committed events and fans them out to websocket clients.

Workers (and `gradscope train`) write to SQLite; the hub polls each watched run's last
sequence number, reads new events once per run and puts one serialised batch into every
client's own bounded queue. A client whose queue is full is not waited for: it is marked
behind and catches up by replaying from the store, so no client ever slows training or
the other clients, and none silently misses an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from gradscope.server.runs.messages import EventsMessage, RunsMessage
from gradscope.server.settings import Settings
from gradscope.server.store import Store

log = logging.getLogger("gradscope.hub")
BATCH = 1000
REPLAYS = 1  # replay batches read at once: the rest wait their turn (each read holds the GIL)


class Sender(Protocol):
    async def send_text(self, data: str) -> None: ...


@dataclass(eq=False)
class Batch:
    """Events first..last of one run, serialised once for every client."""

    first: int
    last: int
    events: list[dict[str, Any]]
    text: str


def events_message(events: list[dict[str, Any]]) -> str:
    """The websocket message that carries a list of events."""
    message = EventsMessage(kind="events", events=events)  # type: ignore[typeddict-item]
    return json.dumps(message, separators=(",", ":"))


@dataclass(eq=False)
class RunClient:
    """One websocket watching one run: its queue, and the last seq it was sent."""

    run_id: str
    last_sent: int
    queue: asyncio.Queue[Batch | None]
    behind: bool = True  # start by replaying from `last_sent`
    dropped: int = field(default=0)
    since: int | None = None  # a replay the client asked for, not begun yet
    gone: bool = False  # the run was deleted: the pump ends, the stream closes with 4404

    def restart(self, since: int) -> None:
        """Replay from `since` (a client that reconnects says what it has seen)."""
        # Taken up by the pump between two sends: a send in flight would otherwise set
        # last_sent after it and lose the request.
        self.since = since
        self.behind = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)  # wake the sender


@dataclass(eq=False)
class ListClient:
    """One websocket watching the run list."""

    queue: asyncio.Queue[str]
    behind: bool = False  # a delta was dropped: send the whole list next


class Hub:
    """Run streams and the run-list stream, fed by polling the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.runs: dict[str, set[RunClient]] = {}
        self.cursors: dict[str, int] = {}
        self.fanned: dict[str, float] = {}  # when each run's last batch went out
        self.lists: set[ListClient] = set()
        self.counter = 0
        self._task: asyncio.Task[None] | None = None
        self._replays = asyncio.Semaphore(REPLAYS)

    async def start(self) -> None:
        self.counter = self.store.change_counter()
        self._task = asyncio.create_task(self._poll_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- run streams --------------------------------------------------------------
    def subscribe(self, run_id: str, since: int) -> RunClient:
        """Register a client; its first batches come from a replay of the store."""
        if run_id not in self.runs:
            self.runs[run_id] = set()
            self.cursors[run_id] = self.store.last_seqs([run_id]).get(run_id, 0)
        client = RunClient(run_id, since, asyncio.Queue(self.settings.ws_queue_batches))
        self.runs[run_id].add(client)
        return client

    def unsubscribe(self, client: RunClient) -> None:
        clients = self.runs.get(client.run_id)
        if clients is None:
            return
        clients.discard(client)
        if not clients:
            del self.runs[client.run_id]
            self.cursors.pop(client.run_id, None)
            self.fanned.pop(client.run_id, None)

    async def pump(self, ws: Sender, client: RunClient) -> None:
        """Send a client everything after its last seq, in order, each event once; return
        when its run is deleted."""
        while not client.gone:
            if client.behind:
                client.behind = False
                if client.since is not None:
                    client.last_sent, client.since = client.since, None
                while not client.queue.empty():  # the replay covers all of it
                    client.queue.get_nowait()
                await self._replay(ws, client)
                continue
            batch = await client.queue.get()
            if client.gone:
                return
            if batch is None or batch.last <= client.last_sent or client.since is not None:
                continue
            if batch.first > client.last_sent + 1:
                client.behind = True  # a gap: never skip, replay instead
                continue
            if batch.first <= client.last_sent:
                events = [e for e in batch.events if e["seq"] > client.last_sent]
                await ws.send_text(events_message(events))
            else:
                await ws.send_text(batch.text)
            client.last_sent = batch.last

    async def _replay(self, ws: Sender, client: RunClient) -> None:
        while True:
            # A batch at a time, a few clients at a time, read and encoded off the event
            # loop: 200 clients replaying at once once held it for seconds a request.
            async with self._replays:
                read = await asyncio.to_thread(self._replay_batch, client.run_id, client.last_sent)
            if read is None:
                return
            text, last, count = read
            await ws.send_text(text)
            client.last_sent = last
            if count < BATCH or client.since is not None:
                return

    def _replay_batch(self, run_id: str, since: int) -> tuple[str, int, int] | None:
        """(the message, its last seq, its events) of the next BATCH events after since."""
        rows = self.store.events(run_id, since, BATCH)
        return (events_message(rows), rows[-1]["seq"], len(rows)) if rows else None

    def _gone(self, run_id: str) -> None:
        """The run was deleted: every client's pump ends (their pages say so)."""
        for client in self.runs.get(run_id, ()):
            client.gone = True
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)  # wake the sender

    def _fan_out(self, run_id: str, batch: Batch) -> None:
        for client in self.runs.get(run_id, ()):
            if client.behind:
                continue
            try:
                client.queue.put_nowait(batch)
            except asyncio.QueueFull:
                client.behind = True  # it will replay from the store
                client.dropped += 1

    # -- run list -----------------------------------------------------------------
    def subscribe_list(self) -> ListClient:
        client = ListClient(asyncio.Queue(self.settings.ws_queue_batches))
        self.lists.add(client)
        return client

    def unsubscribe_list(self, client: ListClient) -> None:
        self.lists.discard(client)

    # -- polling ------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub poll failed; retrying")
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.settings.poll_interval)

    async def poll(self) -> None:
        """One round: new events of watched runs, then run-list changes."""
        if self.runs:
            now = time.monotonic()
            crowd, interval = self.settings.crowd_clients, self.settings.crowd_interval
            # Crowded runs wait until their interval is up: fewer, bigger batches. The
            # interval grows with the crowd, so a run costs the server at most
            # crowd / interval sends a second however many watch it: every send takes CPU
            # from training on a small machine (and a BLAS thread held up stalls its peer).
            due = [
                r
                for r, clients in self.runs.items()
                if len(clients) <= crowd
                or now - self.fanned.get(r, 0.0) >= interval * len(clients) / crowd
            ]
            # Tiny indexed reads (WAL readers never wait for writers): called directly, as a
            # thread handoff would cost more than the query, 50 times a second.
            seqs = self.store.last_seqs(due) if due else {}
            for run_id in set(due) - set(seqs):
                self._gone(run_id)  # deleted (last_seqs leaves unknown ids out)
            for run_id, seq in seqs.items():
                if run_id in self.cursors and seq > self.cursors[run_id]:
                    self.fanned[run_id] = now
                while run_id in self.cursors and seq > self.cursors[run_id]:
                    rows = await asyncio.to_thread(
                        self.store.events, run_id, self.cursors[run_id], BATCH
                    )
                    if not rows or run_id not in self.cursors:
                        break
                    batch = Batch(rows[0]["seq"], rows[-1]["seq"], rows, events_message(rows))
                    self.cursors[run_id] = batch.last
                    self._fan_out(run_id, batch)
        if self.lists:
            counter = self.store.change_counter()
            if counter != self.counter:
                self.counter, runs, deleted = await asyncio.to_thread(
                    self.store.runs_changed_since, self.counter
                )
                text = json.dumps(
                    RunsMessage(kind="runs", runs=[r.to_dict() for r in runs], deleted=deleted)
                )
                for client in list(self.lists):
                    try:
                        client.queue.put_nowait(text)
                    except asyncio.QueueFull:
                        client.behind = True
        else:
            self.counter = self.store.change_counter()
