"""How events are encoded in the events table: compact JSON, and metrics packed in binary.

The training loop hands the store plain events (server/runs/events.py), with each step's
metrics as a StepLoss tuple; only this module knows the rows. Consecutive metrics events of
one commit share one row (`pack`): one PACK_DTYPE record per event, then the data of the
non-per-step ones as a JSON list. A row per step, or a JSON text per step, cost the
training process as much time as a small net's whole step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from gradscope.engine.jsonsafe import json_float, json_safe
from gradscope.server.runs.events import NewEvent, StepLoss

# A packed row's per-event record: step, wall time, epoch (or -1: another metrics event,
# whose data is the item `index` of the JSON list after the records), loss (or index).
PACK_DTYPE = np.dtype([("step", "<i8"), ("t", "<f8"), ("epoch", "<i8"), ("x", "<f8")])


class RawJSON(str):
    """A value already encoded as JSON text; to_json passes it through as it is."""


def _tolist(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    """Compact JSON; NaN/Inf become strings (the fast path pays nothing when there are none)."""
    if isinstance(value, RawJSON):
        return value
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), default=_tolist)
    except ValueError:
        return json.dumps(json_safe(value), allow_nan=False, separators=(",", ":"))


def encode_data(event: NewEvent) -> NewEvent:
    """The event with its data encoded now rather than at commit (so its cost can be timed)."""
    return {**event, "data": RawJSON(to_json(event.get("data", {})))}  # type: ignore[typeddict-item]


def loss_json(epoch: int, loss: float) -> RawJSON:
    """A per-step metrics event's data, formatted directly: the one event every step makes.

    repr(float) is what json.dumps writes for a finite float; non-finite ones become strings.
    """
    loss = float(loss)
    text = repr(loss) if math.isfinite(loss) else f'"{json_float(loss)}"'
    return RawJSON(f'{{"epoch":{epoch},"train_loss":{text}}}')


def pack_losses(steps: list[StepLoss], others: list[Any] | None = None) -> dict[str, Any]:
    """One packed metrics event for consecutive metrics events of one commit.

    An entry is a per-step (step, t, epoch, loss), or (step, t, -1, i) for another metrics
    event (an epoch's test figures) whose data is others[i], so a small set's 13-step
    epochs do not cut the pack. It is written as one row that reads back as the events.
    """
    if len(steps) == 1:  # a lone event is stored as the plain event it is
        s, t, e, x = steps[0]
        data = others[int(x)] if e < 0 and others else loss_json(e, x)
        return {"type": "metrics", "step": s, "t": t, "data": data}
    blob = np.array(steps, dtype=PACK_DTYPE).tobytes()
    if others:
        blob += to_json(others).encode()
    last = steps[-1]
    return {"type": "metrics", "step": last[0], "t": last[1], "n": len(steps), "pack": blob}


def pack_events(items: Iterable[NewEvent | StepLoss], now: float) -> list[dict[str, Any]]:
    """The events to write, in order, each run of consecutive metrics events packed."""
    out: list[dict[str, Any]] = []
    steps: list[StepLoss] = []
    others: list[Any] = []
    for item in items:
        if type(item) is tuple:
            steps.append(item)
        elif (
            item["type"] == "metrics"
            and "n" not in item  # already packed
            and not isinstance(item.get("data"), str)  # already encoded
        ):
            steps.append((item.get("step", 0), item.get("t", now), -1, len(others)))
            others.append(item.get("data", {}))
        else:
            if steps:
                out.append(pack_losses(steps, others))
                steps, others = [], []
            out.append(item)  # type: ignore[arg-type]
    if steps:
        out.append(pack_losses(steps, others))
    return out


def _unpack(data: bytes | str, n: int) -> list[tuple[int, float, Any]]:
    """A packed row's (step, t, data) triples: binary (PACK_DTYPE), or JSON from before."""
    if isinstance(data, str):  # packs of JSON text, as the first version of v2 wrote them
        return [tuple(x) for x in json.loads(data)]
    size = n * PACK_DTYPE.itemsize
    others = json.loads(data[size:]) if len(data) > size else []
    isfinite, out = math.isfinite, []
    for step, t, epoch, x in np.frombuffer(data, PACK_DTYPE, count=n).tolist():
        if epoch < 0:
            out.append((step, t, others[int(x)]))
        else:
            loss = x if isfinite(x) else json_float(x)
            out.append((step, t, {"epoch": epoch, "train_loss": loss}))
    return out


def event_row(run_id: str, seq: int, event: dict, now: float) -> tuple:
    """The events-table row of an event (a packed one's seq is the last of its range)."""
    n = event.get("n", 1)
    data = event["pack"] if n > 1 else to_json(event.get("data", {}))
    t = event.get("t", now)
    return (run_id, seq, str(event["type"]), int(event.get("step", 0)), t, data, n)


def events_from_row(row: tuple) -> list[dict]:
    """The event(s) a row holds: a packed row of n events becomes n of them, seqs ascending."""
    seq, kind, step, t, data, n = row
    if n == 1:
        return [{"seq": seq, "type": kind, "step": step, "t": t, "data": json.loads(data)}]
    first = seq - n + 1
    return [
        {"seq": first + i, "type": kind, "step": s, "t": ts, "data": d}
        for i, (s, ts, d) in enumerate(_unpack(data, n))
    ]
