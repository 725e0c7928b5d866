"""Metrics as series, CSV and JSON: shared by the REST API and `gradscope export`.

Exports are streamed, a batch of events at a time: three concurrent exports of a 44 MB
history once held 1 GB in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from gradscope.server.store import Store
from gradscope.server.store.encoding import to_json

EXPORT_BATCH = 5000  # events read from the store at a time
CSV_COLUMNS = (
    "seq", "step", "epoch", "t", "train_loss", "test_loss", "test_acc", "train_acc", "intervention"
)  # fmt: skip


def metrics_series(
    events: Iterable[dict[str, Any]], names: Iterable[str] | None = None
) -> dict[str, dict[str, list[Any]]]:
    """{name: {"step": [...], "value": [...], "seq": [...]}} from metrics events."""
    wanted = set(names) if names else None
    series: dict[str, dict[str, list[Any]]] = {}
    for e in events:
        for name, value in e["data"].items():
            if name == "epoch" or (wanted is not None and name not in wanted):
                continue
            s = series.setdefault(name, {"step": [], "value": [], "seq": []})
            s["step"].append(e["step"])
            s["value"].append(value)
            s["seq"].append(e["seq"])
    return series


def _intervention(data: dict[str, Any]) -> str:
    """An edit in one CSV cell: `0.weight[3, 1]: 0.41 -> 0.75`, `point[12]: (0.5, -1) -> (0.6,
    -0.9) label 1` (a drag) or `point: added (0.5, -1) label 1`."""
    where = f"{data['param']}{data['index'] if data['index'] else ''}"
    if data["what"] == "point":
        *xy, label = data["point"]
        at = "(" + ", ".join(f"{v:.6g}" for v in xy) + ")"
        moved = data.get("moved_from")
        if moved:
            before = "(" + ", ".join(f"{v:.6g}" for v in moved[:2]) + ")"
            return f"{where}: {before} -> {at} label {label:g}"
        return f"{where}: added {at} label {label:g}"
    return f"{where}: {data['old']:.6g} -> {data['new']:.6g}"


def iter_csv(store: Store, run_id: str, batch: int = EXPORT_BATCH) -> Iterator[str]:
    """One row per metrics event (every step's training loss, every epoch's test figures)
    and per intervention (an edit by hand), as chunks of text: the store is read `batch`
    events at a time, never whole."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for events in _batches(store, run_id, batch, ("metrics", "intervention")):
        for e in events:
            row = {"seq": e["seq"], "step": e["step"], "t": round(e["t"], 6)}
            if e["type"] == "intervention":
                row["intervention"] = _intervention(e["data"])
            else:
                row.update(e["data"])
            writer.writerow(row)
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()


def iter_json(store: Store, run_id: str, batch: int = EXPORT_BATCH) -> Iterator[str]:
    """{"run": the run record, "events": every event in order} as chunks of JSON text, an
    event a line; the store is read `batch` events at a time, never whole."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(run_id)
    yield '{"run": ' + to_json(run.to_dict()) + ',\n"events": ['
    sep = "\n"
    for events in _batches(store, run_id, batch):
        yield sep + ",\n".join(to_json(e) for e in events)
        sep = ",\n"
    yield "\n]}\n"


def _batches(
    store: Store, run_id: str, batch: int, types: tuple[str, ...] | None = None
) -> Iterator[list[dict[str, Any]]]:
    since = 0
    while True:
        events = store.events(run_id, since=since, limit=batch, types=types)
        if not events:
            return
        yield events
        since = events[-1]["seq"]
