"""MNIST's image events: first-layer weights and the misclassified strip, checked against
the model's own weights and predictions and the raw IDX pixels."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from gradscope.engine.mnist import load_mnist
from gradscope.server.runs.config import resolve_config
from gradscope.server.runs.recording import misclassified, unit_images
from gradscope.server.runs.trainers import build_trainer

LIMITS = {"max_parameters": 10_000_000, "max_steps": 10_000_000}


def decode(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8)


def test_mnist_runs_record_weight_images_and_mistakes(real_mnist: Path) -> None:
    config = resolve_config(
        "mnist-mlp", {"dataset": {"mnist_train_limit": 1280}, "epochs": 1}, **LIMITS
    )
    tr = build_trainer(config, real_mnist)
    while tr.step < tr.total_steps:
        tr.train_step()
    records = tr.record_events()
    assert [e["type"] for e in records][-1] == "first_layer"
    images = records[-1]["data"]
    assert images["shape"] == [28, 28] and images["units"] == list(range(32))
    w = tr.model.parameters()[0].data  # (256, 784): the weights into each first-layer unit
    for i in (0, 17, 31):
        back = (decode(images["images"][i]).astype(np.float64) - 127.5) / 127.5
        scale = images["scale"][i]
        assert scale == np.abs(w[i]).max()
        assert np.abs(back * scale - w[i]).max() <= scale / 255 + 1e-6

    epoch = tr.epoch_events()
    json.dumps(epoch, allow_nan=False)
    by_type = {e["type"]: e["data"] for e in epoch}
    matrix = np.array(by_type["confusion"]["matrix"])
    wrong = by_type["misclassified"]
    assert wrong["total"] == matrix.sum() - np.trace(matrix) > 24
    assert len(wrong["items"]) == len(wrong["images"]) == 24
    confidence = [item["confidence"] for item in wrong["items"]]
    assert confidence == sorted(confidence, reverse=True) and confidence[0] > 0.5
    raw, labels = load_mnist("test", directory=real_mnist)  # 0..1 floats of the IDX bytes
    for item, b64 in zip(wrong["items"], wrong["images"], strict=True):
        i = item["index"]
        assert item["label"] == labels[i] != item["pred"]
        assert np.abs(decode(b64) - np.round(raw[i] * 255)).max() <= 1


def test_only_mnist_runs_carry_image_events() -> None:
    tr = build_trainer(resolve_config("moons", {"steps": 20}, **LIMITS))
    for _ in range(13):
        tr.train_step()
    types = {e["type"] for e in tr.record_events() + tr.epoch_events()}
    assert not types & {"first_layer", "misclassified"}


def test_image_helpers_handle_degenerate_input() -> None:
    zero = unit_images(np.zeros((3, 784)))
    assert zero["scale"] == [1.0, 1.0, 1.0]
    assert all((decode(b) == 128).all() for b in zero["images"])
    nan = unit_images(np.full((1, 784), np.nan))
    json.dumps(nan, allow_nan=False)
    out = np.eye(10)[[1, 2, 3]]
    none_wrong = misclassified(out, np.array([1, 2, 3]), np.array([1, 2, 3]), np.zeros)
    assert none_wrong == {"total": 0, "items": [], "images": []}
