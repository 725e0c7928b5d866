"""Uploaded 2-D data sets: a CSV (`x1,x2,label` or `x1,x2,y`) checked row by row, kept in the
data dir as datasets/<id>.csv with a JSON sidecar <id>.json, listed, loaded and deleted.

Ids are made here (32 hex digits) and checked against that pattern before any path is built
from one, so no file name ever comes from a request. Errors name the row (1 is the header)
and the column of the first bad cell, and each size limit names its GRADSCOPE_* setting.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.server.errors import Conflict, GradscopeError, Invalid, NotFound, TooLarge

DATASET_ID = re.compile(r"[0-9a-f]{32}")
HEADERS = {("x1", "x2", "label"): "label", ("x1", "x2", "y"): "y"}
MAX_LABEL = 9  # class labels 0..9: at most ten classes, as MNIST has
MIN_ROWS = 4  # at least one training and one test row of two classes
MAX_NAME = 100


class DatasetError(GradscopeError):
    """An uploaded data set that cannot be stored, found or removed."""


class BadDataset(DatasetError, Invalid):
    """The file is not a CSV of the expected shape; the message names row and column."""


class DatasetTooLarge(DatasetError, TooLarge):
    """Over GRADSCOPE_MAX_DATASET_BYTES or GRADSCOPE_MAX_DATASET_ROWS."""


class UnknownDataset(DatasetError, NotFound):
    """No uploaded data set has this id."""


class DatasetConflict(DatasetError, Conflict):
    """In use by a run, or the data dir already holds GRADSCOPE_MAX_DATASETS sets."""


@dataclass
class ParsedCsv:
    """A checked CSV: points (m, 2), targets (m,) (int64 labels or float64 values)."""

    x: np.ndarray
    y: np.ndarray
    kind: str  # "label" (classification) or "y" (regression)

    @property
    def classes(self) -> int | None:
        """Classes (the largest label + 1), None for a regression."""
        return int(self.y.max()) + 1 if self.kind == "label" else None


def _decode(body: bytes) -> str:
    """The body as text, or BadDataset naming the row and column of the first bad byte."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        row = body[: e.start].count(b"\n") + 1
        column = body[body.rfind(b"\n", 0, e.start) + 1 : e.start].count(b",") + 1
        raise BadDataset(
            f"row {row}, column {column}: not UTF-8 text (byte 0x{body[e.start]:02x}); "
            "save the file as UTF-8 CSV"
        ) from None


def _number(cell: str, row: int, column: int, name: str) -> float:
    where = f"row {row}, column {column} ({name})"
    try:
        value = float(cell)
    except ValueError:
        raise BadDataset(f"{where}: {cell.strip()[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise BadDataset(f"{where}: must be a finite number, got {cell.strip()[:40]}")
    return value


def parse_csv(body: bytes, max_rows: int) -> ParsedCsv:
    """Check a CSV upload: a header `x1,x2,label` or `x1,x2,y`, then numeric rows."""
    if not body.strip():
        raise BadDataset("row 1: the file is empty; it needs a header x1,x2,label or x1,x2,y")
    lines = _decode(body).splitlines()
    header = [h.strip().lower() for h in next(csv.reader(lines[:1]), [])]
    kind = HEADERS.get(tuple(header))
    if kind is None:
        raise BadDataset(
            f"row 1: the header must be x1,x2,label or x1,x2,y, got {','.join(header)[:80]!r}"
        )
    xs: list[tuple[float, float]] = []
    ys: list[float] = []
    for row, cells in enumerate(csv.reader(lines[1:]), start=2):
        if not cells or all(not c.strip() for c in cells):
            continue  # a blank line (a trailing newline, mostly)
        if len(xs) >= max_rows:
            raise DatasetTooLarge(
                f"row {row}: more than {max_rows:,} data rows (GRADSCOPE_MAX_DATASET_ROWS)"
            )
        if len(cells) != 3:
            column = min(len(cells), 3) + 1
            raise BadDataset(
                f"row {row}, column {column}: 3 columns expected ({','.join(header)}), "
                f"got {len(cells)}"
            )
        a, b, t = (_number(c, row, i + 1, header[i]) for i, c in enumerate(cells))
        if kind == "label" and not (t == int(t) and 0 <= t <= MAX_LABEL):
            raise BadDataset(
                f"row {row}, column 3 (label): a class label is an integer from 0 to "
                f"{MAX_LABEL}, got {cells[2].strip()[:40]}"
            )
        xs.append((a, b))
        ys.append(t)
    if len(xs) < MIN_ROWS:
        raise BadDataset(f"row {len(lines) + 1}: at least {MIN_ROWS} data rows are needed")
    y = np.array(ys, dtype=np.int64 if kind == "label" else np.float64)
    if kind == "label" and len(np.unique(y)) < 2:
        raise BadDataset("column 3 (label): every row has the same label; two classes at least")
    return ParsedCsv(np.array(xs, dtype=np.float64), y, kind)


def _check_id(dataset_id: str) -> str:
    if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
        raise UnknownDataset(f"no uploaded data set {str(dataset_id)[:40]!r}")
    return dataset_id


def datasets_dir(data_dir: Path) -> Path:
    """Where a data dir keeps its uploaded sets."""
    return Path(data_dir) / "datasets"


def read_meta(data_dir: Path, dataset_id: str) -> dict[str, Any]:
    """The sidecar of an uploaded set: id, name, kind, rows, classes, bytes, created."""
    path = datasets_dir(data_dir) / f"{_check_id(dataset_id)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise UnknownDataset(f"no uploaded data set {dataset_id!r}") from None


def load_points(data_dir: Path, dataset_id: str) -> ParsedCsv:
    """An uploaded set's points and targets (checked again: the file is read as it is)."""
    path = datasets_dir(data_dir) / f"{_check_id(dataset_id)}.csv"
    try:
        body = path.read_bytes()
    except OSError:
        raise UnknownDataset(f"no uploaded data set {dataset_id!r}") from None
    return parse_csv(body, max_rows=10**9)


def _write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (a crash never leaves half a CSV)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def list_datasets(data_dir: Path) -> list[dict[str, Any]]:
    """Every uploaded set's sidecar, newest first."""
    folder = datasets_dir(data_dir)
    metas = []
    for path in folder.glob("*.json") if folder.is_dir() else ():
        if DATASET_ID.fullmatch(path.stem):
            try:
                metas.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # being written or removed right now
    return sorted(metas, key=lambda m: m.get("created", 0), reverse=True)


def add_dataset(
    data_dir: Path, name: str, body: bytes, *, max_rows: int, max_count: int
) -> dict[str, Any]:
    """Check and store a CSV upload; its sidecar."""
    parsed = parse_csv(body, max_rows)
    if len(list_datasets(data_dir)) >= max_count:
        raise DatasetConflict(
            f"the data dir already holds {max_count} uploaded sets (GRADSCOPE_MAX_DATASETS): "
            "delete one first"
        )
    folder = datasets_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dataset_id = secrets.token_hex(16)
    meta = {
        "id": dataset_id,
        "name": (name.strip() or "upload")[:MAX_NAME],
        "kind": parsed.kind,
        "rows": len(parsed.x),
        "classes": parsed.classes,
        "bytes": len(body),
        "created": time.time(),
    }
    _write(folder / f"{dataset_id}.csv", body)
    _write(folder / f"{dataset_id}.json", json.dumps(meta).encode())
    return meta


def runs_using(configs: Iterable[tuple[str, dict[str, Any]]], dataset_id: str) -> list[str]:
    """The ids of the runs (id, config) whose data set is this upload."""
    return [
        run_id
        for run_id, config in configs
        if (config.get("dataset") or {}).get("name") == "csv"
        and (config.get("dataset") or {}).get("id") == dataset_id
    ]


def delete_dataset(data_dir: Path, dataset_id: str, users: list[str]) -> None:
    """Remove an uploaded set, unless runs (`users`) train on it."""
    read_meta(data_dir, dataset_id)  # UnknownDataset first
    if users:
        shown = ", ".join(users[:5]) + (", ..." if len(users) > 5 else "")
        raise DatasetConflict(f"{len(users)} run(s) use this data set ({shown}): delete them first")
    folder = datasets_dir(data_dir)
    for suffix in (".json", ".csv"):  # the sidecar first: a half-deleted set is not listed
        (folder / f"{dataset_id}{suffix}").unlink(missing_ok=True)
