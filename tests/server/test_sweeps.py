"""Sweeps on this machine: 2 learning rates x 2 seeds make 4 runs through the queue, compare
groups them into 2 banded lines, the sweep names its best run; its page; 422s naming the
field of a sweep that cannot run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import InProcess, in_process

LRS = [0.05, 0.3]
SPEC = {
    "name": "lrs",
    "preset": "xor",
    "config": {"steps": 30, "batch_size": 100, "pace": None},
    "space": {"optimizer.lr": LRS},
    "seeds": 2,
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[InProcess]:
    data = tmp_path_factory.mktemp("sweeps") / "data"
    with in_process(data, real_mnist, max_sweep_runs=6) as a:
        yield a


@pytest.fixture(scope="module")
def sweep(app: InProcess) -> dict[str, Any]:
    """The 2 x 2 sweep, once all its runs have finished."""
    r = app.request("POST", "/api/sweeps", json=SPEC)
    assert r.status_code == 201, r.text
    made = r.json()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = app.request("GET", f"/api/sweeps/{made['id']}").json()
        if now["state"] == "done":
            return now
        time.sleep(0.1)
    raise AssertionError(f"the sweep did not finish: {now['counts']}")


def test_two_lrs_by_two_seeds_make_four_finished_runs_tagged_and_named(
    app: InProcess, sweep: dict[str, Any]
) -> None:
    runs = sweep["runs"]
    assert sweep["counts"] == {"finished": 4} and len(runs) == 4
    settings = sorted((r["config"]["optimizer"]["lr"], r["config"]["seed"]) for r in runs)
    assert settings == [(lr, seed) for lr in LRS for seed in (0, 1)]
    for run in runs:
        lr, seed = run["config"]["optimizer"]["lr"], run["config"]["seed"]
        assert run["name"] == f"lrs lr={lr} seed={seed}"
        assert run["tags"] == [f"sweep:{sweep['id']}"] and run["source"] == "server"
        assert run["config"]["steps"] == 30  # the sweep's config, merged into the preset
    listed = app.request("GET", "/api/sweeps").json()["sweeps"]
    assert [s["id"] for s in listed] == [sweep["id"]]


def test_the_sweep_names_its_best_run_and_setting(sweep: dict[str, Any]) -> None:
    final = {r["id"]: r["summary"]["test_loss"]["final"] for r in sweep["runs"]}
    assert sweep["metric"] == "test_loss"
    assert sweep["best_run"] == min(final, key=final.__getitem__)
    assert sweep["best_value"] == min(final.values())
    by_lr: dict[float, list[float]] = {}
    for r in sweep["runs"]:
        by_lr.setdefault(r["config"]["optimizer"]["lr"], []).append(final[r["id"]])
    means = {lr: sum(v) / len(v) for lr, v in by_lr.items()}
    best_lr = min(means, key=means.__getitem__)
    assert sweep["best_setting"]["values"] == {"optimizer.lr": best_lr}
    assert sweep["best_setting"]["mean"] == pytest.approx(means[best_lr])


def test_compare_by_the_swept_key_gives_two_banded_groups(
    app: InProcess, sweep: dict[str, Any]
) -> None:
    assert sweep["group"] == ["optimizer.lr"]
    ids = ",".join(r["id"] for r in sweep["runs"])
    r = app.request("GET", "/api/compare", params={"runs": ids, "group": "optimizer.lr"})
    assert r.status_code == 200, r.text
    lines = r.json()["lines"]
    assert sorted(line["values"]["optimizer.lr"] for line in lines) == LRS
    for line in lines:
        assert len(line["runs"]) == 2 and line["min"] is not None and line["max"] is not None
        assert any(lo < hi for lo, hi in zip(line["min"], line["max"], strict=True))


def test_the_sweep_page_compares_its_runs_grouped_by_the_swept_key(
    app: InProcess, sweep: dict[str, Any]
) -> None:
    page = app.request("GET", f"/sweeps/{sweep['id']}")
    assert page.status_code == 200, page.text
    ids = ",".join(r["id"] for r in sweep["runs"])
    assert f'data-runs="{ids}"' in page.text
    assert 'value="optimizer.lr" data-fixed selected' in page.text
    assert "/static/js/sweep.js" in page.text and "/static/js/compare.js" in page.text
    missing = app.request("GET", "/sweeps/0123456789ab")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"space": {"optimizer.lrr": [0.1]}}, "space.optimizer.lrr"),
        ({"space": {"optimizer.lr": []}}, "space.optimizer.lr"),
        ({"space": {}}, "space"),
        ({"space": {"optimizer.lr": [0.1, 20.0]}}, "space.optimizer.lr"),
        ({"space": {"optimizer.lr": {"min": 0.01, "max": 0.1}}}, "space.optimizer.lr"),
        ({"space": {"optimizer.lr": [0.1, 0.2]}, "max_runs": 3}, "max_runs"),
        ({"space": {"optimizer.lr": [0.1, 0.2, 0.3, 0.4]}}, "max_runs"),  # GRADSCOPE_MAX_SWEEP_RUNS
        ({"config": {"steps": 0}}, "config.steps"),
        ({"preset": "nope"}, "preset"),
    ],
)
def test_a_sweep_that_cannot_run_is_a_422_naming_the_field(
    app: InProcess, change: dict[str, Any], field: str
) -> None:
    before = len(app.request("GET", "/api/runs").json()["runs"])
    r = app.request("POST", "/api/sweeps", json={**SPEC, **change})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field, r.text
    assert len(app.request("GET", "/api/runs").json()["runs"]) == before


def test_a_random_search_draws_its_samples_within_the_range(app: InProcess) -> None:
    space = {"optimizer.lr": {"min": 0.01, "max": 0.1, "log": True}}
    spec = {**SPEC, "space": space, "samples": 3, "seeds": 1, "executor": "ray"}
    r = app.request("POST", "/api/sweeps", json=spec)
    assert r.status_code == 201, r.text
    made = r.json()
    lrs = [t["values"]["optimizer.lr"] for t in made["trials"]]
    assert len(set(lrs)) == 3 and all(0.01 <= lr <= 0.1 for lr in lrs)
    # Ray runs them (`gradscope sweep --ray`): here they wait, external and queued.
    assert {(r["source"], r["state"]) for r in made["runs"]} == {("external", "queued")}
