"""Metrics as series, CSV and JSON: shared by the REST API and `gradscope export`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from gradscope.server.store import Store

CSV_COLUMNS = ("seq", "step", "epoch", "t", "train_loss", "test_loss", "test_acc", "train_acc")


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


def export_csv(store: Store, run_id: str) -> str:
    """One row per metrics event: every step's training loss, every epoch's test figures."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for e in store.events(run_id, types=("metrics",)):
        writer.writerow({"seq": e["seq"], "step": e["step"], "t": round(e["t"], 6), **e["data"]})
    return out.getvalue()


def export_json(store: Store, run_id: str) -> dict[str, Any]:
    """The run record and every event it recorded, in order."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(run_id)
    return {"run": run.to_dict(), "events": store.events(run_id)}
