"""server.runs.trainers: presets reproduce the articles and learn, checkpoints resume bit for
bit, divergence names the op. (Their events: test_trainer_events.py.)"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradscope.engine.checkpoint import CheckpointError
from gradscope.engine.examples import NapkinAverage, TinyClassifier
from gradscope.engine.graph import to_dict
from gradscope.engine.inference import forward
from gradscope.server.runs.config import RunConfig, resolve_config
from gradscope.server.runs.trainers import (
    ScalarTrainer,
    TensorTrainer,
    Trainer,
    build_trainer,
)

LIMITS = {"max_parameters": 10_000_000, "max_steps": 10_000_000}
TENSOR_OPS = {"linear", "relu", "tanh", "sigmoid", "mse_loss", "cross_entropy", "hinge"}


def config(preset: str | None, overrides: dict | None = None) -> RunConfig:
    # At full speed: the small presets are paced for watching (20-60 s a run).
    return resolve_config(preset, {"pace": None, **(overrides or {})}, **LIMITS)


def trainer(preset: str | None, overrides: dict | None = None, **kw: Any) -> Trainer:
    return build_trainer(config(preset, overrides), **kw)


def run_to_end(tr: Trainer) -> list[float]:
    return [tr.train_step() for _ in range(tr.total_steps - tr.step)]


def check_events(events: list[dict], step: int) -> None:
    """The event schema: type, step, data; JSON without NaN literals."""
    for ev in events:
        assert set(ev) == {"type", "step", "data"} and ev["step"] == step
        assert isinstance(ev["type"], str) and isinstance(ev["data"], dict)
    json.dumps(events, allow_nan=False)


# -- the two articles --------------------------------------------------------------------


@pytest.fixture(scope="module")
def napkin(
    napkin_trained: tuple[NapkinAverage, list[float]],
) -> tuple[Trainer, list[dict], list[float], NapkinAverage, list[float]]:
    """The napkin preset trained to its end once for the module, with the article's run
    (the session's napkin_trained): (trainer, its start events, its losses, the article's
    example, the article's losses)."""
    tr = trainer("napkin-average")
    start = tr.start_events()
    ours = run_to_end(tr)
    ex, reference = napkin_trained
    return tr, start, ours, ex, reference


def test_napkin_preset_is_the_article_step_for_step(napkin: tuple) -> None:
    tr, _, ours, ex, reference = napkin
    assert isinstance(tr, ScalarTrainer) and tr.total_steps == 300
    assert ours == reference  # every loss, bit for bit
    weights = tr.record_events()[0]
    assert weights["type"] == "weights"
    assert weights["data"]["params"] == {f"w{i}": [w] for i, w in enumerate(ex.weights)}
    assert weights["data"]["shapes"] == {f"w{i}": [] for i in range(4)}
    assert all(abs(w - 0.25) < 0.01 for w in ex.weights)


def test_napkin_graph_is_sample_zeros(napkin: tuple) -> None:
    # 1000 samples make a graph of thousands of nodes: the event shows sample 0's.
    start = napkin[1]
    (graph,) = start
    assert graph["type"] == "graph" and graph["data"]["scope"] == "sample 0"
    ops = Counter(n["op"] for n in graph["data"]["nodes"])
    assert ops == Counter({"": 11, "*": 5, "+": 5, "**2": 1})
    assert graph["data"]["dot"].startswith("digraph G {")
    # the neuron's parameters are one group, named by the model, not by the labels
    (model,) = (g for g in graph["data"]["groups"] if g["name"] == "model")
    labels = sorted(graph["data"]["nodes"][i]["label"] for i in model["params"])
    assert labels == ["w0", "w1", "w2", "w3"]  # the napkin neuron has no bias


def test_trained_napkin_structure_and_health_name_its_parameters(napkin: tuple) -> None:
    tr = napkin[0]
    events = {e["type"]: e["data"] for e in tr.record_events()}
    assert set(events["weights"]["structure"]) == set(events["weights"]["params"])
    assert events["weights"]["structure"]["w3"]["input"] == 3
    health = events["health"]
    assert set(health["grad_norm"]) == set(health["update_ratio"]) == {"weight"}
    assert health["dead_relu"] == {}


def test_micrograd_preset_is_the_article_step_for_step() -> None:
    tr = trainer("micrograd-classifier")
    (graph,) = tr.start_events()
    ours = run_to_end(tr)
    ex = TinyClassifier()
    assert ours == ex.train(100) and ours[-1] < 0.01
    assert [p.data for p in tr.params] == [p.data for p in ex.model.parameters()]
    # The whole step's graph, as the article draws it: the same value and op nodes.
    assert graph["data"]["scope"] == "step"
    article = to_dict(ex.last_loss)
    assert len(graph["data"]["nodes"]) == len(article["nodes"]) == 398
    assert Counter(n["op"] for n in graph["data"]["nodes"]) == Counter(
        n["op"] for n in article["nodes"]
    )
    assert len(graph["data"]["edges"]) == len(article["edges"])
    events = tr.record_events()
    check_events(events, 100)
    values = next(e for e in events if e["type"] == "graph_values")["data"]
    assert values["data"] == [n["data"] for n in article["nodes"]]  # same order, same numbers
    assert values["grad"] == [n["grad"] for n in article["nodes"]]
    (metrics,) = tr.epoch_events()
    assert metrics["data"]["test_acc"] == 1.0 and metrics["data"]["test_loss"] < 0.01
    # Not MNIST: the epoch's confusion matrix comes with the next record, once.
    matrix = next(e for e in tr.record_events() if e["type"] == "confusion")
    assert matrix["data"] == {"labels": [-1, 1], "matrix": [[2, 0], [0, 2]]}
    assert all(e["type"] != "confusion" for e in tr.record_events())


def test_scalar_graph_falls_back_to_sample_zero_beyond_max_nodes() -> None:
    tr = trainer("micrograd-classifier", {"record": {"max_graph_nodes": 200}})
    (graph,) = tr.start_events()
    assert graph["data"]["scope"] == "sample 0" and len(graph["data"]["nodes"]) == 131
    tr.train_step()
    grads_before = [p.grad for p in tr.params]
    values = next(e for e in tr.record_events() if e["type"] == "graph_values")["data"]
    assert len(values["data"]) == len(graph["data"]["nodes"])
    assert [p.grad for p in tr.params] == grads_before  # graphing sample 0 left them alone


# -- the tensor presets learn ------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "bar"), [("moons", 0.97), ("circle", 0.93), ("xor", 0.9), ("spiral", 0.9)]
)
def test_toy_presets_reach_their_accuracy(preset: str, bar: float) -> None:
    tr = trainer(preset)
    assert isinstance(tr, TensorTrainer)
    start = tr.start_events()
    check_events(start, 0)
    dataset = next(e for e in start if e["type"] == "dataset")["data"]
    assert len(dataset["points"]) == 400 and {p[2] for p in dataset["points"]} == {0, 1}
    xmin, xmax, ymin, ymax = dataset["bounds"]
    assert all(xmin < x < xmax and ymin < y < ymax for x, y, _ in dataset["points"])
    losses = run_to_end(tr)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    metrics = tr.epoch_events()[0]["data"]
    assert metrics["test_acc"] >= bar, metrics
    boundary = next(e for e in tr.record_events() if e["type"] == "boundary")["data"]
    assert boundary["grid"] == 40 and len(boundary["values"]) == 40 * 40
    assert boundary["bounds"] == dataset["bounds"]
    assert 0 <= min(boundary["values"]) < 0.1 and 0.9 < max(boundary["values"]) <= 1


def test_boundary_grid_is_row_major_with_y_outer() -> None:
    # A linear separator on gauss: class 1 sits at (0.5, 0.5), so P(class 1) grows along
    # x within a row and from row to row (y).
    tr = trainer("moons", {"dataset": {"name": "gauss"}, "model": {"hidden": []}, "steps": 200})
    run_to_end(tr)
    values = np.array(tr.boundary()["values"]).reshape(40, 40)
    assert values[0, 0] < values[0, -1] and values[0, 0] < values[-1, 0]
    assert values[-1, -1] > 0.9 > 0.1 > values[0, 0]


def test_mnist_preset_reaches_97_percent(real_mnist: Path) -> None:
    tr = trainer("mnist-mlp", mnist_dir=real_mnist)
    assert tr.steps_per_epoch == 938 and tr.num_parameters == 235_146
    accuracies = []
    while tr.step < tr.total_steps:
        tr.train_step()
        if tr.epoch_finished():
            events = tr.epoch_events()
            check_events(events, tr.step)
            accuracies.append(events[0]["data"]["test_acc"])
            assert events[0]["data"]["epoch"] == tr.epoch == len(accuracies)
            matrix = np.array(events[1]["data"]["matrix"])
            assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert accuracies[0] >= 0.95 and accuracies[-1] >= 0.97, accuracies


def test_mnist_dir_defaults_to_the_environment(
    real_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADSCOPE_MNIST_DIR", str(real_mnist))
    tr = trainer("mnist-mlp", {"dataset": {"mnist_train_limit": 640}, "epochs": 1})
    assert tr.data.n_train == 640 and tr.total_steps == 10 and len(tr.data.x_test) == 10_000
    assert abs(float(tr.data.x_train.mean())) < 0.1  # standardized
    run_to_end(tr)
    assert tr.epoch_finished() and tr.epoch == 1


# -- every loss, both engines -----------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"loss": "bce"},
        {"loss": "hinge"},
        {"loss": "mse", "model": {"output": "tanh"}},
        {"loss": "mse", "model": {"output": "sigmoid"}},
        # Scalar: batches of 10, or a Value graph per sample of 400 makes it slow.
        {
            "engine": "scalar",
            "loss": "mse",
            "optimizer": {"name": "sgd", "lr": 0.05},
            "batch_size": 10,
        },
        {
            "engine": "scalar",
            "loss": "hinge",
            "optimizer": {"name": "sgd", "lr": 0.05},
            "batch_size": 10,
        },
    ],
)
def test_every_loss_learns_moons(overrides: dict) -> None:
    base = {"model": {"hidden": [8, 8], "activation": "tanh"}, "steps": 300}
    tr = trainer(
        "moons", {**base, **overrides, "model": {**base["model"], **overrides.get("model", {})}}
    )
    assert tr.num_parameters == sum(
        w.size + (b.size if b is not None else 0) for w, b, _ in tr._layers()
    )
    run_to_end(tr)
    metrics = tr.epoch_events()[0]["data"]
    assert metrics["test_acc"] > 0.85, metrics
    values = tr.boundary()["values"]
    assert all(0 <= v <= 1 for v in values)


def test_scalar_numpy_view_matches_the_value_graph() -> None:
    tr = trainer(
        "moons",
        {
            "engine": "scalar",
            "loss": "mse",
            "model": {"output": "tanh", "hidden": [4]},
            "optimizer": {"name": "sgd"},
            "steps": 3,
        },
    )
    assert isinstance(tr, ScalarTrainer)
    run_to_end(tr)
    x = tr.data.x_test[:20]
    ours = forward(tr._layers(), x)[:, 0]
    values = [tr.model(list(row)).data for row in x]
    assert np.allclose(ours, values, rtol=1e-12, atol=1e-12)


def test_rectangles_regress_on_the_tensor_engine() -> None:
    napkin_5x5 = {
        "engine": "tensor",
        "model": {"start_weights": None},
        "dataset": {"size": 5, "n": 500},
        "steps": 600,
        "optimizer": {"name": "adam", "lr": 0.01},
    }
    tr = trainer("napkin-average", napkin_5x5)
    run_to_end(tr)
    (metrics,) = tr.epoch_events()
    assert set(metrics["data"]) == {"epoch", "test_loss"} and metrics["data"]["test_loss"] < 1e-8
    w = tr.model.parameters()[0].data
    assert np.allclose(w, 1 / 25, atol=1e-4)  # the average of 25 pixels


# -- the data order, the clock ------------------------------------------------------------


def test_data_order_depends_only_on_seed_and_epoch() -> None:
    a, b = trainer("moons"), trainer("moons")
    assert a.steps_per_epoch == 13  # 400 samples in batches of 32
    batches_a = []
    for _ in range(30):
        batches_a.append(a._batch().copy())
        a.train_step()
        assert a.epoch_finished() == (a.step % 13 == 0)
    assert a.epoch == 2
    b.step = 13  # jump straight to epoch 1: the same batches without replaying epoch 0
    assert all(np.array_equal(b._batch(), batches_a[13]) for _ in range(2))
    epoch0 = np.concatenate(batches_a[:13])
    assert sorted(epoch0.tolist()) == list(range(400))  # one pass over every sample
    assert not np.array_equal(epoch0, np.concatenate(batches_a[13:26]))  # reshuffled
    other = trainer("moons", {"seed": 1})
    assert not np.array_equal(other._batch(), batches_a[0])


def test_full_batch_keeps_data_order() -> None:
    tr = trainer("moons", {"batch_size": None})
    assert tr.steps_per_epoch == 1 and tr._batch() is None
    tr.train_step()
    assert tr.epoch_finished() and tr.epoch == 1


# -- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "overrides", "at", "until"),
    [
        ("micrograd-classifier", None, 37, 60),
        ("moons", None, 20, 45),  # Adam, mid-epoch (13 steps per epoch)
        (
            "xor",
            {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}},
            7,
            30,
        ),
        (
            "circle",
            {"optimizer": {"name": "adamw", "weight_decay": 0.1}, "batch_size": None},
            5,
            15,
        ),
    ],
)
def test_checkpoint_resume_is_bit_identical(
    tmp_path: Path, preset: str, overrides: dict | None, at: int, until: int
) -> None:
    straight = trainer(preset, overrides)
    expected = [straight.train_step() for _ in range(until)]

    first = trainer(preset, overrides)
    for _ in range(at):
        first.train_step()
    path = tmp_path / "ckpt.npz"
    first.save_checkpoint(path)
    first.train_step()  # the checkpoint must not see what happens after it

    resumed = trainer(preset, overrides)
    resumed.load_checkpoint(path)
    assert (resumed.step, resumed.epoch) == (at, at // resumed.steps_per_epoch)
    again = [resumed.train_step() for _ in range(until - at)]
    assert again == expected[at:]
    assert resumed.epoch_events()[0]["data"] == straight.epoch_events()[0]["data"]


def test_load_checkpoint_refuses_foreign_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    for preset in ("micrograd-classifier", "moons"):
        with pytest.raises(CheckpointError):
            trainer(preset).load_checkpoint(bad)
    other = tmp_path / "other.npz"
    trainer("napkin-average").save_checkpoint(other)
    with pytest.raises(CheckpointError):
        trainer("micrograd-classifier").load_checkpoint(other)
    four = trainer("micrograd-classifier", {"model": {"hidden": [1], "bias": False}})
    assert four.num_parameters == 4  # as many as napkin's, but other parameters
    with pytest.raises(CheckpointError):
        four.load_checkpoint(other)
    trainer("xor").save_checkpoint(other)
    with pytest.raises(CheckpointError):
        trainer("moons", {"model": {"hidden": [4]}}).load_checkpoint(other)
