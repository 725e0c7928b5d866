"""GET /api/compare: runs on one step grid, grouped by config keys into a mean and band, and
the errors: a 404 problem for an unknown run, 422s naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradscope.server.store.encoding import pack_losses
from tests.server.conftest import InProcess, in_process

UNKNOWN = "0123456789ab"
LRS, SEEDS = (0.05, 0.2), (1, 2)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("compare") / "data", real_mnist) as a:
        yield a


@pytest.fixture(scope="module")
def grid(shared: InProcess) -> list[dict[str, Any]]:
    """2 learning rates x 2 seeds of a small classification run, finished."""
    runs = [
        shared.create(
            "xor", steps=30, batch_size=100, seed=seed, optimizer={"name": "sgd", "lr": lr}
        )
        for lr in LRS
        for seed in SEEDS
    ]
    return [shared.wait_for(r["id"], lambda x: x["state"] == "finished") for r in runs]


def compare(app: InProcess, compared: list[dict[str, Any]], **params: Any) -> Any:
    params = {"runs": ",".join(r["id"] for r in compared), **params}
    return app.request("GET", "/api/compare", params=params)


def metric(app: InProcess, run_id: str, name: str) -> dict[int, float]:
    """A run's own series, step -> value, from its metrics."""
    s = app.request("GET", f"/api/runs/{run_id}/metrics", params={"names": name}).json()
    return dict(zip(s["series"][name]["step"], map(float, s["series"][name]["value"])))


@pytest.mark.parametrize("name", ["train_loss", "test_acc"])
def test_two_lrs_by_two_seeds_make_two_groups_whose_bands_span_their_seeds(
    shared: InProcess, grid: list[dict[str, Any]], name: str
) -> None:
    r = compare(shared, grid, metric=name, group="optimizer.lr")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [line["values"] for line in body["lines"]] == [{"optimizer.lr": lr} for lr in LRS]
    for lr, line in zip(LRS, body["lines"], strict=True):
        members = [g for g in grid if g["config"]["optimizer"]["lr"] == lr]
        assert line["runs"] == [m["id"] for m in members] and line["key"] == f"lr={lr}"
        own = [metric(shared, m["id"], name) for m in members]
        steps = sorted(set(own[0]) | set(own[1]))
        assert line["step"] == steps and len(steps) > 3
        for i, step in enumerate(steps):
            values = [o[step] for o in own if step in o]
            assert line["min"][i] == min(values) and line["max"][i] == max(values)
            assert line["mean"][i] == pytest.approx(np.mean(values), rel=1e-12)
            assert line["std"][i] == pytest.approx(np.std(values), abs=1e-12)
            assert line["n"][i] == len(values)
        assert any(lo < hi for lo, hi in zip(line["min"], line["max"], strict=True))  # seeds differ


def test_coarse_buckets_band_the_members_own_history_buckets(
    shared: InProcess, grid: list[dict[str, Any]]
) -> None:
    body = compare(shared, grid, group="optimizer.lr", points=7).json()
    s0, s1 = body["from"], body["to"]
    for line in body["lines"]:
        own = []
        for rid in line["runs"]:
            h = shared.request(
                "GET",
                f"/api/runs/{rid}/history",
                params={"names": "train_loss", "from": s0, "to": s1, "points": 7},
            ).json()["series"]["train_loss"]
            own.append(h)
        assert len(line["step"]) == len(own[0]["step"]) <= 7
        for i in range(len(line["step"])):
            lasts = [o["last"][i] for o in own]
            assert line["min"][i] == min(lasts) and line["max"][i] == max(lasts)
            assert line["step"][i] == min(o["step"][i] for o in own)


def test_ungrouped_every_run_is_a_line_named_by_its_run_and_time_is_seconds(
    shared: InProcess, grid: list[dict[str, Any]]
) -> None:
    body = compare(shared, grid, x="time").json()
    assert [line["key"] for line in body["lines"]] == [g["name"] for g in grid]
    assert [r["id"] for r in body["runs"]] == [g["id"] for g in grid]
    assert body["metrics"][:3] == ["train_loss", "test_loss", "test_acc"]
    assert any(m.startswith("grad_norm/") for m in body["metrics"])
    for line in body["lines"]:
        t = line["t"]
        assert line["min"] is line["max"] is line["std"] is None and line["n"] == [1] * len(t)
        assert len(t) == len(line["step"]) and t[0] >= 0 and t == sorted(t) and t[-1] > 0
    assert all(line["t"] is None for line in compare(shared, grid).json()["lines"])


def test_an_unknown_run_is_a_404_problem_naming_it(
    shared: InProcess, grid: list[dict[str, Any]]
) -> None:
    r = shared.request("GET", "/api/compare", params={"runs": f"{grid[0]['id']},{UNKNOWN}"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert UNKNOWN in r.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group": "optimizer.momentum_x"}, "group"),
        ({"group": "optimizer"}, "group"),
        ({"group": "1bad key"}, "group"),
        ({"metric": "no_such_metric"}, "metric"),
        ({"metric": "<script>"}, "metric"),
        ({"points": 0}, "points"),
        ({"points": 10_001}, "points"),
        ({"x": "epoch"}, "x"),
        ({"from": 9, "to": 3}, "from"),
        ({"runs": ""}, "runs"),
        ({"runs": ",".join([UNKNOWN] * 51)}, None),  # the same id once: a 404
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    shared: InProcess, grid: list[dict[str, Any]], params: dict[str, Any], field: str | None
) -> None:
    r = compare(shared, grid[:2], **params)
    if field is None:
        assert r.status_code == 404, r.text
        return
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]], r.text


def test_too_many_runs_is_a_422_naming_runs(shared: InProcess) -> None:
    ids = ",".join(f"{i:012x}" for i in range(51))
    r = shared.request("GET", "/api/compare", params={"runs": ids})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "runs", r.text
    page = shared.request("GET", "/compare", params={"runs": ids})
    assert page.status_code == 422 and 'id="error-page"' in page.text


def test_long_runs_are_read_in_whole_blocks_and_band_their_own_buckets(
    shared: InProcess,
) -> None:
    store = shared.app.state.store
    ids = []
    for seed in (1, 2):
        config = {"optimizer": {"lr": 0.1}, "seed": seed}
        rid = store.create_run(config, preset=None, name=None, source="cli", total_steps=40_000).id
        rng = np.random.default_rng(seed)
        for first in range(1, 40_001, 5000):
            losses = [(s, float(s), 0, float(rng.random())) for s in range(first, first + 5000)]
            store.append_events(rid, [pack_losses(losses)])
        ids.append(rid)
    r = shared.request(
        "GET", "/api/compare", params={"runs": ",".join(ids), "group": "optimizer.lr"}
    )
    body = r.json()
    assert body["points"] == 40_000 // 256  # whole 256-step blocks, not raw steps
    (line,) = body["lines"]
    own = [
        shared.request(
            "GET",
            f"/api/runs/{rid}/history",
            params={
                "names": "train_loss",
                "from": body["from"],
                "to": body["to"],
                "points": body["points"],
            },
        ).json()["series"]["train_loss"]
        for rid in ids
    ]
    assert line["step"] == own[0]["step"] and len(line["step"]) == body["points"]
    assert line["min"] == [min(a, b) for a, b in zip(own[0]["last"], own[1]["last"], strict=True)]
    assert line["max"] == [max(a, b) for a, b in zip(own[0]["last"], own[1]["last"], strict=True)]
