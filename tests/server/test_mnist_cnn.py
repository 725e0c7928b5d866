"""The mnist-cnn preset end to end: one real epoch through the trainer and loop (>= 98.5%),
its events (the CNN panel's feature maps follow the frames), its config's checks and sizes,
and the finished run as a /draw model. The epoch is trained once, here, for every test."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradscope.engine import nn
from gradscope.engine.checkpoint import FORMAT, CheckpointError
from gradscope.engine.data import load_mnist
from gradscope.engine.inference import module_forward, module_outputs
from gradscope.server.digits.models import load_checkpoint_model
from gradscope.server.runs.config import ConfigError, resolve_config
from gradscope.server.runs.data import MNIST_MEAN, MNIST_STD
from gradscope.server.runs.events import FRAME_TYPES, validate_event
from gradscope.server.runs.loop import TrainingLoop
from gradscope.server.runs.trainers import build_trainer
from gradscope.server.runs.trainers.cnn import build_model
from gradscope.server.store import Store
from tests.server.conftest import in_process

LIMITS = {"max_parameters": 5_000_000, "max_steps": 10**6, "max_memory_mb": 2048}
MAPS = [[8, 28, 28], [8, 14, 14], [16, 10, 10], [16, 5, 5]]  # conv, pool, conv, pool


@pytest.fixture(scope="module")
def cnn_run(
    tmp_path_factory: pytest.TempPathFactory, real_mnist: Path
) -> Iterator[tuple[Path, str, list[dict[str, Any]]]]:
    """One epoch of the preset (its schedule spans the epoch), BLAS on one thread (conftest):
    (data dir, run id, its events)."""
    data_dir = tmp_path_factory.mktemp("cnn") / "data"
    store = Store(data_dir)
    try:
        config = resolve_config("mnist-cnn", {"epochs": 1}, **LIMITS)
        run = store.create_run(
            config.model_dump(), preset="mnist-cnn", name="cnn", source="cli",
            total_steps=config.total_steps(),
        )  # fmt: skip
        TrainingLoop(store, run.id, build_trainer(config, real_mnist), config).run()
        yield data_dir, run.id, store.events(run.id)
    finally:
        store.close()


def test_one_epoch_reaches_98_5_percent(cnn_run: tuple[Path, str, list[dict[str, Any]]]) -> None:
    _, _, events = cnn_run
    assert events[-1]["data"]["state"] == "finished"
    accs = [e["data"]["test_acc"] for e in events if "test_acc" in e.get("data", {})]
    assert len(accs) == 1 and accs[0] >= 0.985, accs


def test_feature_maps_follow_the_frames(cnn_run: tuple[Path, str, list[dict[str, Any]]]) -> None:
    _, _, events = cnn_run
    for e in events:
        validate_event(e)
    frames = sorted({e["step"] for e in events if e["type"] in FRAME_TYPES})
    maps = [e for e in events if e["type"] == "feature_maps"]
    assert len(frames) >= 3 and [e["step"] for e in maps] == frames  # one at every frame
    last = maps[-1]["data"]
    assert [layer["shape"] for layer in last["layers"]] == MAPS
    assert [layer["name"] for layer in last["layers"]] == [
        "conv 1 (relu)", "pool 1", "conv 2 (relu)", "pool 2",
    ]  # fmt: skip
    for layer in last["layers"]:
        c, h, w = layer["shape"]
        assert len(layer["images"]) == len(layer["low"]) == len(layer["high"]) == c
        pixels = [np.frombuffer(base64.b64decode(b), np.uint8) for b in layer["images"]]
        assert all(p.size == h * w for p in pixels)
        # Each map spans its own range: its lowest value black, its highest white.
        for p, lo, hi in zip(pixels, layer["low"], layer["high"], strict=True):
            assert hi == lo or (p.min(), p.max()) == (0, 255)
    # The maps change as the network learns: the first frame's are not the last's.
    assert maps[0]["data"]["layers"][0]["images"] != last["layers"][0]["images"]
    assert (last["index"], last["label"]) == (0, 7)  # MNIST's first test digit is a 7
    kernels = [e for e in events if e["type"] == "first_layer"][-1]["data"]
    assert kernels["shape"] == [5, 5] and kernels["units"] == list(range(8))


def test_the_digit_image_and_the_maps_are_the_models_own(
    cnn_run: tuple[Path, str, list[dict[str, Any]]], real_mnist: Path
) -> None:
    """The recorded digit is test row 0, and the last maps are what the final checkpoint's
    model computes for it in eval mode (to the 1/255 the images keep)."""
    data_dir, run_id, events = cnn_run
    x, _ = load_mnist("test", directory=real_mnist, download=False)
    last = [e for e in events if e["type"] == "feature_maps"][-1]
    ink = np.frombuffer(base64.b64decode(last["data"]["image"]), np.uint8)
    assert np.abs(ink / 255 - x[0]).max() <= 0.5 / 255 + 1e-6
    checkpoint = sorted((data_dir / "checkpoints" / run_id).glob("step-*.npz"))[-1]
    assert checkpoint.name == f"step-{last['step']}.npz"
    model = load_checkpoint_model(checkpoint)
    inputs = ((x[:1] - MNIST_MEAN) / MNIST_STD).astype(np.float32).reshape(1, 1, 28, 28)
    outs = module_outputs(model, inputs)
    conv1 = outs[2][0]  # conv, norm, relu
    layer = last["data"]["layers"][0]
    for c in range(8):
        lo, hi = conv1[c].min(), conv1[c].max()
        got = np.frombuffer(base64.b64decode(layer["images"][c]), np.uint8)
        want = np.round(255 * (conv1[c].ravel() - lo) / max(hi - lo, 1e-12))
        assert np.abs(got - want).max() <= 1
        assert layer["high"][c] == pytest.approx(hi, abs=1e-3)


def test_health_histograms_and_graph_of_a_cnn(
    cnn_run: tuple[Path, str, list[dict[str, Any]]],
) -> None:
    _, _, events = cnn_run
    health = [e for e in events if e["type"] == "health"][-1]["data"]
    # Dead ReLUs per channel of each conv layer, and per unit of the dense layer.
    assert set(health["dead_relu"]) == {"2", "6", "10"}
    assert all(0 <= v <= 1 for v in health["dead_relu"].values())
    assert "0.weight" in health["grad_norm"] and "1.weight" in health["grad_norm"]
    hist = [e for e in events if e["type"] == "histograms"][-1]["data"]
    assert hist["structure"]["1.weight"]["layer"] == hist["structure"]["0.weight"]["layer"] == 0
    assert hist["structure"]["9.weight"]["layer"] == 2
    graph = next(e for e in events if e["type"] == "graph")["data"]
    group = {n["op"]: n["group"] for n in graph["nodes"] if n["op"] in ("conv2d", "batch_norm")}
    assert group == {"conv2d": "4", "batch_norm": "4"}  # the second conv's (the last seen)
    assert [g["name"] for g in graph["groups"]] == ["0", "4", "9", "11", "loss"]


def test_config_counts_conv_layers_and_names_the_culprit() -> None:
    config = resolve_config("mnist-cnn", None, **LIMITS)
    built = build_model(config)
    assert config.num_parameters() == built.num_parameters() == 56_090
    need, activations = config.memory()
    assert activations < need < 2048 * 2**20
    wide = {"channels": 4, "kernel": 9, "pool": 4}  # 28 -> 20 -> 5, then 5 < 9
    tiny = {"channels": 4, "kernel": 1, "pool": 4}  # 28 -> 7 -> 1, then 1 < 4
    bad = [
        ("model.conv.1.kernel", "does not fit", {"model": {"conv": [wide, wide]}}),
        ("model.conv.2.pool", "does not fit", {"model": {"conv": [tiny, tiny, tiny]}}),
        ("model.conv", "at least one", {"model": {"conv": []}}),
        ("model.kind", "not an image set", {"dataset": {"name": "moons"}}),
        ("model.conv.0.channels", "less than", {"model": {"conv": [{"channels": 10_000}]}}),
        ("model.hidden", "GRADSCOPE_MAX_PARAMETERS", {"model": {"hidden": [4096, 4096]}}),
        ("batch_size", "GRADSCOPE_MAX_RUN_MEMORY_MB", {"batch_size": 60_000}),
        ("engine", "tensor engine", {"engine": "scalar"}),
    ]
    for field, words, overrides in bad:
        with pytest.raises(ConfigError) as e:
            resolve_config("mnist-cnn", overrides, **LIMITS)
        assert e.value.field == field and words in e.value.message, (field, str(e.value))
    with pytest.raises(ConfigError) as e:
        resolve_config("mnist-mlp", {"model": {"conv": [{"channels": 4}]}}, **LIMITS)
    assert e.value.field == "model.conv"


def test_the_finished_run_predicts_on_draw(
    cnn_run: tuple[Path, str, list[dict[str, Any]]], real_mnist: Path
) -> None:
    data_dir, run_id, _ = cnn_run
    x, y = load_mnist("test", directory=real_mnist, download=False)
    with in_process(data_dir, real_mnist) as app:
        listed = {m["id"]: m for m in app.request("GET", "/api/models").json()["models"]}
        assert listed[run_id]["net"] == "cnn" and listed["bundled-cnn"]["net"] == "cnn"
        assert listed[run_id]["sizes"] == [784, 8, 8, 16, 16, 128, 10]
        body = {"pixels": x[0].reshape(28, 28).tolist(), "preprocess": False, "model": run_id}
        r = app.request("POST", "/api/predict", params={"activations": "1"}, json=body)
        assert r.status_code == 200, r.text
        answer = r.json()
    assert answer["model"] == run_id and answer["digit"] == y[0]
    assert [layer["shape"] for layer in answer["layers"]] == [*MAPS, [128], [10]]
    checkpoint = sorted((data_dir / "checkpoints" / run_id).glob("step-*.npz"))[-1]
    model = load_checkpoint_model(checkpoint)
    inputs = ((x[:1] - MNIST_MEAN) / MNIST_STD).astype(np.float32).reshape(1, 1, 28, 28)
    assert np.allclose(answer["logits"], module_forward(model, inputs)[0], atol=1e-3)


def test_a_header_naming_a_huge_model_is_refused_before_it_is_built(tmp_path: Path) -> None:
    header = {
        "format": FORMAT,
        "version": 1,
        "architecture": nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).config(),
        "meta": {},
    }
    header["architecture"]["modules"][1].update(in_features=3000, out_features=3000)
    path = tmp_path / "step-1.npz"
    np.savez(path, header=np.array(json.dumps(header)))
    with pytest.raises(CheckpointError, match="more than 5,000,000 parameters"):
        load_checkpoint_model(path)
    conv = {"type": "Conv2d", "in_channels": 1, "out_channels": 64, "kernel_size": [3, 3]}
    header["architecture"] = {"type": "Sequential", "modules": [conv] * 3}
    np.savez(path, header=np.array(json.dumps(header)))
    with pytest.raises(CheckpointError, match="more than 1,000 parameters"):
        load_checkpoint_model(path, max_parameters=1000)
