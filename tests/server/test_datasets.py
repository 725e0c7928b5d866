"""Your own data: POST /api/datasets checks a CSV row by row (a bad one gets a 4xx naming its
row and column), stores it in the data dir, lists it, trains a run on it, and refuses to
delete it while a run uses it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.server.conftest import InProcess, in_process


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("datasets"), real_mnist, max_dataset_rows=500) as a:
        yield a


def _upload(app: InProcess, body: bytes, name: str = "mine") -> object:
    return app.request(
        "POST", "/api/datasets", params={"name": name}, content=body,
        headers={"content-type": "text/csv"},
    )  # fmt: skip


def _delete_run(app: InProcess, run_id: str, timeout: float = 30.0) -> None:
    """Delete a finished run; until the manager has reaped its worker it answers 409."""
    deadline = time.monotonic() + timeout
    while (r := app.request("DELETE", f"/api/runs/{run_id}")).status_code == 409:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)
    assert r.status_code == 204, r.text


def _blobs(n: int = 60) -> bytes:
    rng = np.random.default_rng(1)
    rows = ["x1,x2,label"]
    for i in range(n):
        c = i % 2
        x, y = rng.normal(0, 0.2, 2) + (1.0 if c else -1.0)
        rows.append(f"{x:.4f},{y:.4f},{c}")
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        (b"", 422, "row 1"),
        (b"a,b,c\n1,2,0\n", 422, "row 1: the header"),
        (b"x1,x2,label\n1,2,0\n3,4\n", 422, "row 3, column 3: 3 columns expected"),
        (b"x1,x2,label\n1,2,0\n1,nan,1\n", 422, "row 3, column 2 (x2): must be a finite"),
        (b"x1,x2,y\n1,2,0.5\n1,2,inf\n", 422, "row 3, column 3 (y): must be a finite"),
        (b"x1,x2,label\n1,2,0\nfoo,2,1\n", 422, "row 3, column 1 (x1): 'foo' is not a number"),
        (b"x1,x2,label\n1,2,0\n1,2,1.5\n", 422, "row 3, column 3 (label): a class label"),
        (b"x1,x2,label\n1,2,0\n1,\xff2,1\n", 422, "row 3, column 2: not UTF-8"),
        (b"x1,x2,label\n" + b"0,0,0\n" * 10**6, 413, "row 502: more than 500 data rows"),
        (b"x1,x2,label\n1,2,0\n3,4,0\n5,6,0\n7,8,0\n", 422, "two classes"),
    ],
    ids=["empty", "header", "columns", "nan", "inf", "text", "label", "utf8", "rows", "one-class"],
)
def test_a_bad_file_is_refused_naming_row_and_column(
    app: InProcess, body: bytes, status: int, where: str
) -> None:
    r = _upload(app, body)
    assert r.status_code == status, r.text
    assert where in r.json()["detail"]
    if status == 413:
        assert "GRADSCOPE_MAX_DATASET_ROWS" in r.json()["detail"]


def test_an_upload_trains_and_cannot_vanish_from_under_its_run(app: InProcess) -> None:
    r = _upload(app, _blobs())
    assert r.status_code == 201, r.text
    meta = r.json()
    assert (meta["rows"], meta["classes"], meta["kind"], meta["name"]) == (60, 2, "label", "mine")
    files = sorted(p.name for p in (app.data_dir / "datasets").iterdir())
    assert files == [f"{meta['id']}.csv", f"{meta['id']}.json"]
    listed = app.request("GET", "/api/datasets").json()["datasets"]
    assert meta["id"] in [d["id"] for d in listed]
    # A run on it: the server fills in its split and classes from the file.
    config = {
        "dataset": {"name": "csv", "id": meta["id"], "test_ratio": 0.25},
        "loss": "cross_entropy", "model": {"hidden": [4]}, "steps": 40, "batch_size": None,
    }  # fmt: skip
    run = app.create(None, **config)
    assert run["config"]["dataset"]["n"] == 45 and run["config"]["dataset"]["test_n"] == 15
    done = app.wait_for(run["id"], lambda r: r["state"] in ("finished", "failed"))
    assert done["state"] == "finished", done
    acc = [e["data"]["test_acc"] for e in app.events(run["id"]) if "test_acc" in e["data"]]
    assert acc and acc[-1] >= 0.9
    # In use: 409 naming the run; once the run is gone, it can go.
    r = app.request("DELETE", f"/api/datasets/{meta['id']}")
    assert r.status_code == 409 and run["id"] in r.json()["detail"]
    _delete_run(app, run["id"])
    assert app.request("DELETE", f"/api/datasets/{meta['id']}").status_code == 204
    assert app.request("DELETE", f"/api/datasets/{meta['id']}").status_code == 404
    assert not list((app.data_dir / "datasets").iterdir())


def test_a_multipart_file_and_a_regression(app: InProcess) -> None:
    body = b"x1,x2,y\n0,0,0\n1,0,0.5\n0,1,0.5\n1,1,1\n"
    r = app.request("POST", "/api/datasets", files={"file": ("plane.csv", body, "text/csv")})
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["classes"], r.json()["kind"]) == ("plane.csv", None, "y")
    bad = {"dataset": {"name": "csv", "id": r.json()["id"]}, "loss": "cross_entropy", "steps": 1}
    r = app.request("POST", "/api/runs", json={"config": bad})
    assert r.status_code == 422 and "loss" in r.text
    unknown = {**bad, "dataset": {"name": "csv", "id": "f" * 32}, "loss": "mse"}
    r = app.request("POST", "/api/runs", json={"config": unknown})
    assert r.status_code == 422 and "dataset.id" in r.text
    assert app.request("DELETE", "/api/datasets/..%2Fruns").status_code == 404
