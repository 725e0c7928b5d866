"""server.runs.trainers' events: the schema, JSON-safe numbers, histograms, health."""

from __future__ import annotations

import numpy as np
import pytest

from .test_training import check_events, trainer

# -- events ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("napkin-average", {"dataset": {"n": 30}}),
        ("micrograd-classifier", None),
        (
            "moons",
            {
                "engine": "scalar",
                "loss": "hinge",
                "optimizer": {"name": "sgd"},
                "model": {"hidden": [4]},
            },
        ),
        ("spiral", None),
        ("moons", {"model": {"hidden": [64, 64]}}),  # > 1000 parameters: histograms
        ("napkin-average", {"engine": "tensor", "model": {"start_weights": None}}),
    ],
)
def test_events_follow_the_schema(preset: str, overrides: dict | None) -> None:
    tr = trainer(preset, overrides)
    check_events(tr.start_events(), 0)
    tr.watch = True  # as the loop does before a step whose frame it records
    epoch_ended = False
    for _ in range(3):
        tr.train_step()
        events = tr.record_events()
        check_events(events, tr.step)
        types = [e["type"] for e in events]
        snapshot = "weights" if tr.num_parameters <= 1000 else "histograms"
        expected = [snapshot, "health", "graph_values"]
        expected += ["boundary", "neurons"] if tr.data.is_2d else []
        # a classification epoch's confusion matrix comes with the next record
        expected += ["confusion"] if epoch_ended and tr.data.classes is not None else []
        assert types == expected
        epoch_ended = tr.epoch_finished()
        if epoch_ended:
            check_events(tr.epoch_events(), tr.step)
    health = events[1]["data"]
    assert set(health) == {"grad_norm", "update_ratio", "dead_relu"}
    assert all(v > 0 for v in health["grad_norm"].values())
    assert all(v > 0 for v in health["update_ratio"].values())
    check_events(tr.epoch_events(), tr.step)


def test_non_finite_values_become_strings() -> None:
    tr = trainer("moons", {"model": {"hidden": [4]}})
    tr.train_step()
    weight = tr.model.parameters()[0]
    weight.data[0, 0], weight.data[0, 1] = np.nan, -np.inf
    events = tr.record_events() + tr.epoch_events()
    check_events(events, 1)
    params = events[0]["data"]["params"]["0.weight"]
    assert params[:2] == ["nan", "-inf"]
    assert tr.epoch_events()[0]["data"]["test_loss"] == "nan"


def test_histograms_keep_their_edges_and_sample() -> None:
    tr = trainer("moons", {"model": {"hidden": [64, 64]}})
    assert tr.num_parameters > 1000
    first = tr.record_events()[0]["data"]["layers"]
    assert set(first) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    for _ in range(50):
        tr.train_step()
    later = tr.record_events()[0]["data"]["layers"]
    for name, p in tr.model.named_parameters():
        a, b = first[name], later[name]
        assert a["edges"] == b["edges"] and len(a["edges"]) == 33
        assert sum(b["counts"]) == p.size and len(b["counts"]) == 32
        assert len(b["sample"]) == min(32, p.size) and a["sample"] != b["sample"]
        assert set(b["sample"]) <= set(p.data.ravel().tolist())  # real values of p
        assert b["norm"] == pytest.approx(float(np.linalg.norm(p.data)), rel=1e-4)


def test_update_ratio_is_that_of_the_last_update_when_it_was_watched() -> None:
    tr = trainer("moons")
    tr.train_step()
    unknown = tr.record_events()[1]["data"]["update_ratio"]
    assert set(unknown.values()) == {None}  # the update was not watched: unknown, not a guess
    tr.watch = True
    before = {n: p.data.copy() for n, p in tr.model.named_parameters()}
    tr.train_step()
    health = tr.record_events()[1]["data"]
    for n, p in tr.model.named_parameters():
        expect = np.linalg.norm(p.data - before[n]) / np.linalg.norm(before[n])
        assert health["update_ratio"][n] == pytest.approx(expect, rel=1e-6)
    assert tr.record_events()[1]["data"]["update_ratio"] == health["update_ratio"]  # no step
    tr.watch = False
    tr.train_step()  # the watched update is no longer the last one
    assert set(tr.record_events()[1]["data"]["update_ratio"].values()) == {None}
    assert set(health["dead_relu"]) == {"1", "3"}  # the two ReLU modules
    assert all(0 <= v <= 1 for v in health["dead_relu"].values())


def test_epoch_events_report_running_train_accuracy() -> None:
    tr = trainer("moons")
    for _ in range(tr.steps_per_epoch):
        tr.train_step()
    (metrics,) = tr.epoch_events()
    assert metrics["data"]["epoch"] == 1
    assert 0 < metrics["data"]["train_acc"] <= 1 and 0 < metrics["data"]["test_acc"] <= 1
    confusion = next(e for e in tr.record_events() if e["type"] == "confusion")
    assert confusion["data"]["labels"] == [0, 1]
    assert sum(map(sum, confusion["data"]["matrix"])) == 400
