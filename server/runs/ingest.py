"""Ingest: runs trained elsewhere (a script using gradscope.server.client, a Ray trial) send
their metrics in batches, bounded, validated and idempotent, and stay alive by heartbeat.

An external run's config is whatever its script says (free JSON); its events are the same
`metrics` events a server run records (events.py: a step's train_loss, an epoch's test
figures), so every page reads them alike. A batch is committed whole or not at all, and a
batch whose steps were committed already is answered again without storing anything: the
run row's step (updated in the batch's own transaction) is the watermark, and a client
never splits one step across two batches (see client.py). A run that sends nothing for
GRADSCOPE_INGEST_TIMEOUT seconds is marked crashed by the reaper here; its next batch or
heartbeat revives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gradscope.server.errors import Conflict, GradscopeError, Invalid
from gradscope.server.runs.errors import UnknownRun
from gradscope.server.runs.events import EpochMetrics, Pending, StepMetrics, new_event
from gradscope.server.settings import Settings
from gradscope.server.store import FINAL_STATES, RunRecord, Store

log = logging.getLogger("gradscope.ingest")

SOURCE = "external"  # store/schema.py SOURCES: a run its own script trains and logs
BATCH_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
FINISHED_STATES = ("finished", "failed", "stopped")
# States a batch or heartbeat moves back to running: the script is plainly alive.
REVIVED = {"queued", "interrupted", "crashed"}
LIVE = {"running", "paused"}
REMEMBERED_BATCHES = 256  # batch ids answered again verbatim, per run
REAP_EVERY = 1.0  # seconds between looks for silent external runs
METRIC_NAMES = {*StepMetrics.__annotations__, *EpochMetrics.__annotations__}


class IngestError(GradscopeError):
    """An ingest request that cannot be served."""


class BadBatch(IngestError, Invalid):
    """A malformed batch; `field` is the dotted path of the culprit (events.3.step)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.reason = field, message


class NotExternal(IngestError, Conflict):
    """The run was not created through the ingest API, or it has ended."""


@dataclass
class Batch:
    """A validated batch: the events to store (per-step losses as StepLoss tuples)."""

    batch_id: str
    events: list[Pending]
    first: int
    last: int
    epoch: int


@functools.cache
def _adapter(kind: type) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def _metrics(data: Any, where: str) -> dict[str, Any]:
    """A metrics event's data, checked against its declaration (events.py)."""
    known = "epoch, train_loss (a step's); epoch, test_loss, test_acc, train_acc (an epoch's)"
    if not isinstance(data, dict):
        raise BadBatch(where, "must be an object of metrics")
    for name in data:
        if name not in METRIC_NAMES:
            raise BadBatch(f"{where}.{name}", f"unknown metric (metrics events hold {known})")
    kind = StepMetrics if "train_loss" in data else EpochMetrics
    try:
        return _adapter(kind).validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join([where, *map(str, err["loc"][:1])])  # not a union's branch
        raise BadBatch(field, f"{err['msg']} (metrics events hold {known})") from None


def parse_batch(batch_id: str, events: list[dict[str, Any]], max_events: int) -> Batch:
    """A batch from its id and events (their envelope already typed), or BadBatch."""
    if not BATCH_ID.fullmatch(batch_id):
        raise BadBatch("batch_id", "1-64 characters of A-Z a-z 0-9 _ . : - (e.g. a uuid)")
    if not events:
        raise BadBatch("events", "a batch holds at least one event")
    if len(events) > max_events:
        raise BadBatch(
            "events",
            f"at most {max_events:,} events a batch (GRADSCOPE_MAX_INGEST_EVENTS), "
            f"not {len(events):,}: send them in several",
        )
    now, out, prev, epoch = time.time(), [], -1, 0
    for i, event in enumerate(events):
        step, t = event["step"], event.get("t")
        if step < prev:
            raise BadBatch(
                f"events.{i}.step", f"steps must not go back within a batch ({step} after {prev})"
            )
        prev = step
        t = now if t is None else t
        data = _metrics(event["data"], f"events.{i}.data")
        epoch = max(epoch, data["epoch"])
        if "train_loss" in data:
            loss = data["train_loss"]
            out.append((step, t, data["epoch"], float(loss)))  # the loop's own StepLoss
        else:
            out.append({**new_event("metrics", step, data), "t": t})  # type: ignore[typeddict-item]
    return Batch(batch_id, out, events[0]["step"], prev, epoch)


def create_external(
    store: Store,
    *,
    name: str | None,
    config: dict[str, Any],
    preset: str | None,
    tags: list[str],
    total_steps: int,
    state: str = "running",
    pid: int | None = None,
) -> RunRecord:
    """A new external run: running (its script sends from now), or queued (a trial that
    waits for its turn on a cluster)."""
    run = store.create_run(
        config, preset=preset, name=name, source=SOURCE, total_steps=total_steps
    )
    store.update_run(run.id, tags=tags, pid=pid)
    if state != "queued":
        store.set_state(run.id, state, only_from={"queued"})
    return store.get_run(run.id) or run


class Ingest:
    """The ingest service the app owns: batches, heartbeats, finishes and the reaper."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._locks: dict[str, asyncio.Lock] = {}
        self._answers: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self._with_metrics: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reaping silent external runs."""
        self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper

    def external(self, run_id: str) -> RunRecord:
        """The run, if it is an external one (404 for none, 409 for a run trained here)."""
        run = self.store.get_run(run_id)
        if run is None:
            raise UnknownRun(run_id)
        if run.source != SOURCE:
            raise NotExternal(
                f"run {run_id} is trained by this server ({run.source}): only runs created "
                "with POST /api/ingest/runs take events"
            )
        return run

    async def append(self, run_id: str, batch: Batch) -> dict[str, Any]:
        """Store a batch once; a batch sent again is answered again, stored nothing."""
        async with self._locks.setdefault(run_id, asyncio.Lock()):
            return await asyncio.to_thread(self._append, run_id, batch)

    def _append(self, run_id: str, batch: Batch) -> dict[str, Any]:
        run = self.external(run_id)
        seen = self._answers.setdefault(run_id, OrderedDict())
        if batch.batch_id in seen:
            return {**seen[batch.batch_id], "duplicate": True, "state": run.state}
        committed = self._has_metrics(run_id)
        if committed and batch.last <= run.step:
            # Sent before, answered, the answer lost (or this server restarted): a no-op.
            return self._answer(run, batch, accepted=0, duplicate=True)
        if committed and batch.first <= run.step:
            raise BadBatch(
                "events.0.step",
                f"step {batch.first} is at or before the run's last committed step {run.step}: "
                "a batch continues after it",
            )
        if run.state in FINAL_STATES:
            raise NotExternal(f"run {run_id} is {run.state}: it takes no more events")
        if run.state in REVIVED:
            self.store.set_state(run_id, "running", only_from=REVIVED)
        self.store.append_events(run_id, batch.events, {"step": batch.last, "epoch": batch.epoch})
        self._with_metrics.add(run_id)
        answer = self._answer(self.external(run_id), batch, len(batch.events), False)
        seen[batch.batch_id] = answer
        while len(seen) > REMEMBERED_BATCHES:
            seen.popitem(last=False)
        return answer

    def _has_metrics(self, run_id: str) -> bool:
        if run_id not in self._with_metrics and self.store.events(
            run_id, limit=1, types=("metrics",)
        ):
            self._with_metrics.add(run_id)
        return run_id in self._with_metrics

    @staticmethod
    def _answer(run: RunRecord, batch: Batch, accepted: int, duplicate: bool) -> dict[str, Any]:
        return {
            "run_id": run.id,
            "batch_id": batch.batch_id,
            "accepted": accepted,
            "duplicate": duplicate,
            "step": run.step,
            "last_seq": run.last_seq,
            "state": run.state,
        }

    def heartbeat(self, run_id: str, pid: int | None = None) -> RunRecord:
        """The script is alive: keep its run from being reaped (and revive a reaped one)."""
        run = self.external(run_id)
        if run.state in FINAL_STATES:
            return run
        # updated_at: when the reaper last heard of it
        self.store.update_run(run_id, **({} if pid is None else {"pid": pid}))
        if run.state in REVIVED:
            self.store.set_state(run_id, "running", only_from=REVIVED)
        return self.external(run_id)

    def finish(self, run_id: str, state: str, message: str | None) -> RunRecord:
        """End the run as its script says (finishing twice the same way is no error)."""
        run = self.external(run_id)
        if run.state == state:
            return run
        if run.state in FINAL_STATES:
            raise NotExternal(f"run {run_id} is already {run.state}")
        states = LIVE | REVIVED
        if not self.store.set_state(run_id, state, message=message, only_from=states):
            raise NotExternal(f"run {run_id} changed state; try again")
        self._answers.pop(run_id, None)
        return self.external(run_id)

    def reap(self, now: float | None = None) -> list[str]:
        """Mark crashed the external runs silent for GRADSCOPE_INGEST_TIMEOUT seconds."""
        now = time.time() if now is None else now
        timeout, crashed = self.settings.ingest_timeout, []
        for run in self.store.list_runs():
            if run.source != SOURCE or run.state not in LIVE:
                continue
            if now - run.updated_at <= timeout:
                continue
            message = (
                f"nothing heard from its script for {timeout:g} s (GRADSCOPE_INGEST_TIMEOUT): "
                "its process is gone? Its next batch or heartbeat revives it"
            )
            if self.store.set_state(run.id, "crashed", message=message, only_from=LIVE):
                crashed.append(run.id)
                log.warning("external run %s crashed: silent for %g s", run.id, timeout)
        return crashed

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY)
            try:
                await asyncio.to_thread(self.reap)
            except Exception:
                log.exception("the ingest reaper hit an error; carrying on")
