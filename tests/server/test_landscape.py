"""GET /api/runs/{id}/landscape and /sharpness on real runs (an in-process app, its worker
processes real): the napkin neuron's slice, path and gradient step, a learning rate past the
stability limit, the sharpness against the exact Hessian, random directions, and bad input
answered 422 or 404 naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradscope.engine.data import rectangles
from tests.server.conftest import InProcess, in_process

FINAL = {"finished", "failed"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    folder = tmp_path_factory.mktemp("landscape")
    with in_process(folder / "data", folder / "no-mnist") as a:
        yield a


def finished(api: InProcess, preset: str, **config: Any) -> dict[str, Any]:
    run = api.create(preset, **config)
    return api.wait_for(run["id"], lambda r: r["state"] in FINAL, timeout=120)


@pytest.fixture(scope="module")
def napkin(api: InProcess) -> dict[str, Any]:
    """The napkin preset at full speed, a frame (with its weights) every 10 steps."""
    run = finished(api, "napkin-average", dataset={"n": 100}, record={"every": 10})
    assert run["state"] == "finished"
    return run


def get(api: InProcess, run_id: str, route: str, **params: Any) -> Any:
    return api.request("GET", f"/api/runs/{run_id}/{route}", params=params)


def test_the_napkin_slice_path_ends_in_its_valley(api: InProcess, napkin: dict) -> None:
    r = get(api, napkin["id"], "landscape", params="w0,w1", n=41)
    assert r.status_code == 200, r.text
    d = r.json()
    assert (
        d["step"] == 300 and d["mode"] == "weights" and d["parameters"] == ["w0", "w1", "w2", "w3"]
    )
    assert len(d["loss"]) == 41 * 41 and d["samples"] == d["train_size"] == 100
    path = d["path"]
    assert path["step"][0] == 0 and path["step"][-1] == 300
    assert (path["x"][0], path["y"][0]) == (0.98, 0.4)  # the article's starting weights
    # The path ends at the step's point, at the valley's floor (both weights near 0.25).
    end = np.array([path["x"][-1], path["y"][-1]])
    assert end == pytest.approx([d["point"]["x"], d["point"]["y"]])
    assert end == pytest.approx([0.25, 0.25], abs=0.02)
    cell = (d["bounds"][1] - d["bounds"][0]) / 40
    assert abs(d["min"]["x"] - end[0]) <= cell and abs(d["min"]["y"] - end[1]) <= cell
    assert d["min"]["loss"] == min(d["loss"])
    # The slice's levels run from the floor up.
    assert min(d["loss"]) < d["levels"][0] < d["levels"][-1] <= max(d["loss"])
    assert d["levels"] == sorted(d["levels"])


def test_the_landscape_loss_is_the_runs_own_loss(api: InProcess, napkin: dict) -> None:
    """A scalar-engine run evaluated by the equivalent numpy computation: the loss at a
    recorded step's weights is the train loss of the step that followed it."""
    events = api.events(napkin["id"])
    loss = {e["step"]: e["data"]["train_loss"] for e in events if "train_loss" in e["data"]}
    for at in (0, 100, 200):
        d = get(api, napkin["id"], "landscape", at=at, params="w2,w3", n=3).json()
        assert d["point"]["loss"] == pytest.approx(loss[at + 1], rel=1e-12)
        assert d["slice"]["start_loss"] == pytest.approx(loss[at + 1], rel=1e-12)
        assert d["path"]["step"][-1] == at


def test_a_step_of_lr_lands_where_the_next_step_starts(api: InProcess, napkin: dict) -> None:
    """Plain gradient descent: the 1-D slice's step is the run's own next step."""
    events = api.events(napkin["id"])
    loss = {e["step"]: e["data"]["train_loss"] for e in events if "train_loss" in e["data"]}
    s = get(api, napkin["id"], "landscape", at=0, n=3).json()["slice"]
    assert s["lr"] == 0.1 and s["step_loss"] == pytest.approx(loss[2], rel=1e-9)
    assert s["step_loss"] < s["start_loss"]  # lr 0.1 is well inside the valley
    assert 0 < s["step_t"] < 2 * s["valley_t"]


def test_a_learning_rate_past_the_limit_overshoots(api: InProcess) -> None:
    run = finished(api, "napkin-average", dataset={"n": 100}, optimizer={"lr": 1.2}, steps=20)
    sharp = get(api, run["id"], "sharpness", points=5).json()
    assert sharp["limit"] == pytest.approx(2 / 1.2)
    assert all(v > sharp["limit"] for v in sharp["values"])  # past the edge of stability
    s = get(api, run["id"], "landscape", at=0, params="w0,w1", n=5).json()["slice"]
    assert s["step_t"] > 2 * s["valley_t"]  # past the mirror point of the valley
    assert s["step_loss"] > s["start_loss"]  # the loss goes up after the step
    losses = [v for v in s["loss"] if isinstance(v, float)]
    assert min(losses) < s["start_loss"]  # the valley the step jumped over is on the slice


def test_the_sharpness_is_the_exact_top_eigenvalue(api: InProcess, napkin: dict) -> None:
    """The napkin loss is quadratic: its Hessian is (2 / n) X^T X at every step."""
    r = get(api, napkin["id"], "sharpness", points=7)
    assert r.status_code == 200, r.text
    d = r.json()
    x, _ = rectangles(100, 2, 0, dtype=np.float64)
    exact = np.linalg.eigvalsh(2 / len(x) * x.T @ x)[-1]
    assert len(d["steps"]) == 7 and d["steps"][0] == 0 and d["steps"][-1] == 300
    assert d["values"] == pytest.approx([exact] * 7, rel=0.01)
    assert d["limit"] == pytest.approx(20.0) and d["optimizer"] == "sgd"


def test_a_tensor_run_slices_along_random_directions(api: InProcess) -> None:
    run = finished(api, "gauss", steps=60, record={"every": 20})
    d = get(api, run["id"], "landscape", n=9, seed=3).json()
    assert d["mode"] == "directions" and [a["seed"] for a in d["axes"]] == [3, 4]
    assert (d["point"]["x"], d["point"]["y"]) == (0.0, 0.0)
    assert d["path"]["step"] == [0, 20, 40, 60]
    assert d["path"]["x"][-1] == pytest.approx(0.0, abs=1e-9)
    centre = d["loss"][4 * 9 + 4]
    assert centre == pytest.approx(d["point"]["loss"])
    assert "0.weight[0][1]" in d["parameters"]
    weights = get(api, run["id"], "landscape", n=3, params="0.weight[0][1],2.bias[0]").json()
    assert weights.get("mode") == "weights", weights
    assert weights["mode"] == "weights" and weights["point"]["loss"] == pytest.approx(centre)
    sharp = get(api, run["id"], "sharpness", points=2).json()
    assert sharp["limit"] is None and sharp["optimizer"] == "adam" and len(sharp["values"]) == 2


@pytest.mark.parametrize(
    ("params", "status", "names"),
    [
        ({"n": 202}, 422, ["n", "201", "GRADSCOPE_LANDSCAPE_MAX_GRID"]),
        ({"n": 2}, 422, ["n"]),
        ({"params": "w0,w9"}, 422, ["params", "'w9'", "w0, w1, w2, w3"]),
        ({"params": "w0"}, 422, ["params", "two different weights"]),
        ({"at": 5}, 404, ["step 5", "nearest recorded steps: 0, 10"]),
        ({"at": -1}, 422, ["at"]),
    ],
)
def test_bad_input_is_named(
    api: InProcess, napkin: dict, params: dict, status: int, names: list[str]
) -> None:
    r = get(api, napkin["id"], "landscape", **params)
    assert r.status_code == status, r.text
    for name in names:
        assert name in r.text


def test_bad_sharpness_input_and_unknown_runs(api: InProcess, napkin: dict) -> None:
    r = get(api, napkin["id"], "sharpness", points=201)
    assert r.status_code == 422 and "points" in r.text
    for route in ("landscape", "sharpness"):
        r = get(api, "000000000000", route)
        assert r.status_code == 404 and "000000000000" in r.text


def test_the_work_limit_is_named(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", tmp_path / "none", landscape_max_work=4_000) as app:
        run = finished(app, "napkin-average", dataset={"n": 100}, steps=5)
        r = get(app, run["id"], "landscape", n=3)
        assert r.status_code == 200, r.text  # 9 points x 100 rows x 4 weights: 3,600
        r = get(app, run["id"], "landscape", n=5)
        assert r.status_code == 422 and "GRADSCOPE_LANDSCAPE_MAX_WORK" in r.text
