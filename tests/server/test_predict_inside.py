"""Inside the digit model: /api/predict?activations=1 returns every layer's activations (within
GRADSCOPE_MAX_ACTIVATION_VALUES), and every answer says whether the drawing looks like a digit
at all (server/digits/typical.py), calibrated on the real MNIST test set."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from gradscope.server.digits import preprocess as digits
from gradscope.server.digits import typical
from gradscope.server.digits.models import BUNDLED, load_bundled
from gradscope.server.runs.data import MNIST_MEAN, MNIST_STD
from tests.server.conftest import InProcess, in_process
from tests.server.test_predict import canvas_png, mnist_test  # noqa: F401 (a fixture)

# Not digits, drawn as a user would on the 280 px canvas: (strokes of points).
SHAPES = {
    "X": [[(60, 60), (220, 220)], [(220, 60), (60, 220)]],
    "H": [[(70, 40), (70, 240)], [(210, 40), (210, 240)], [(70, 140), (210, 140)]],
    "box": [[(60, 60), (220, 60), (220, 220), (60, 220), (60, 60)]],
    "scribble": [[(40, 100), (240, 120), (50, 160), (230, 200), (60, 60), (200, 250)]],
}
DIGITS = {  # drawn digits, which must not be flagged
    "1": [[(140, 40), (140, 240)]],
    "7": [[(60, 50), (220, 50), (120, 240)]],
    "4": [[(180, 240), (180, 40), (60, 170), (220, 170)]],
}


def drawing(strokes: list[list[tuple[int, int]]], width: int = 18) -> bytes:
    """Dark strokes on a white 280x280 canvas, as a PNG."""
    img = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(img)
    for stroke in strokes:
        pen.line(stroke, fill=0, width=width, joint="curve")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("inside"), real_mnist, max_activation_values=600) as a:
        yield a


def predict(app: InProcess, png: bytes, **params: Any) -> dict[str, Any]:
    r = app.request(
        "POST", "/api/predict", content=png, headers={"content-type": "image/png"}, params=params
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_the_bundled_threshold_is_the_test_sets_99th_percentile(
    mnist_test: tuple[np.ndarray, np.ndarray],  # noqa: F811
) -> None:
    space = typical.load()
    x, _ = mnist_test
    scores = space.scores(typical.framed(x))
    assert abs(np.percentile(scores, typical.PERCENTILE) - space.threshold) < 1e-3
    assert np.mean(scores > space.threshold) == pytest.approx(0.01, abs=1e-3)
    assert space.components.shape == (typical.COMPONENTS, 784)
    gram = space.components @ space.components.T
    assert np.allclose(gram, np.eye(typical.COMPONENTS), atol=1e-4)  # orthonormal rows


def test_letters_scribbles_and_noise_are_flagged_and_drawn_digits_are_not(app: InProcess) -> None:
    for name, strokes in SHAPES.items():
        for width in (12, 18, 26):
            judged = predict(app, drawing(strokes, width))["typical"]
            assert judged["unlike_digits"], (name, width, judged)
            assert judged["score"] > judged["threshold"]
    for name, strokes in DIGITS.items():
        body = predict(app, drawing(strokes))
        assert not body["typical"]["unlike_digits"], (name, body["typical"])
        assert body["digit"] == int(name)
    noise = np.random.default_rng(0).random((28, 28)).round(3).tolist()
    r = app.request("POST", "/api/predict", json={"pixels": noise, "preprocess": False})
    assert r.status_code == 200 and r.json()["typical"]["unlike_digits"], r.text


def test_activations_are_the_models_own_layers(
    app: InProcess,
    mnist_test: tuple[np.ndarray, np.ndarray],  # noqa: F811
) -> None:
    x, _ = mnist_test
    plain = predict(app, canvas_png(x[0]))
    assert "layers" not in plain  # only when asked
    png = canvas_png(x[0])
    body = predict(app, png, activations="1")
    layers = body["layers"]
    model = load_bundled()
    widths = [w.shape[0] for w, _, _ in model.layers]
    assert [layer["shape"] for layer in layers] == [[n] for n in widths]
    assert layers[-1]["name"] == "logits" and layers[0]["name"].startswith("hidden 1")
    # Recomputed here from the weights, by hand: the framed input, through each layer with its
    # ReLU.
    framed = digits.preprocess(digits.decode_image(png))
    h = (framed.astype(np.float64).reshape(1, 784) - MNIST_MEAN) / MNIST_STD
    limit = 600  # the app's GRADSCOPE_MAX_ACTIVATION_VALUES: the values stop there
    left = limit
    for i, ((w, b, act), layer) in enumerate(zip(model.layers, layers, strict=True)):
        h = h @ w.T.astype(np.float64) + b
        if act == "relu":
            h = np.maximum(h, 0)
        assert layer["shown"] == min(widths[i], left) == len(layer["values"])
        got = np.array(layer["values"])
        assert np.allclose(got, h[0, : len(got)], atol=2e-3), layer["name"]
        left -= layer["shown"]
    assert sum(layer["shown"] for layer in layers) == limit
    # The logits the answer gives are the last layer's, and their softmax the probabilities.
    logits = np.array(body["logits"])
    assert np.allclose(logits, h[0], atol=2e-3)
    p = np.exp(logits - logits.max())
    assert np.allclose(p / p.sum(), body["probabilities"], atol=1e-6)


def test_a_cnns_activations_are_maps_within_the_limit(
    app: InProcess,
    mnist_test: tuple[np.ndarray, np.ndarray],  # noqa: F811
) -> None:
    """The bundled CNN: every conv and pool layer as [channels, height, width], the values
    stopping at the app's GRADSCOPE_MAX_ACTIVATION_VALUES (600, inside the first layer)."""
    x, _ = mnist_test
    png = canvas_png(x[0])
    body = predict(app, png, activations="1", model="bundled-cnn")
    assert body["model"] == "bundled-cnn"
    layers = body["layers"]
    assert [(layer["name"], layer["shape"]) for layer in layers] == [
        ("conv 1 (relu)", [8, 28, 28]),
        ("pool 1", [8, 14, 14]),
        ("conv 2 (relu)", [16, 10, 10]),
        ("pool 2", [16, 5, 5]),
        ("hidden 1 (relu)", [128]),
        ("logits", [10]),
    ]
    assert [layer["shown"] for layer in layers] == [600, 0, 0, 0, 0, 0]
    # The values are the engine model's own (eval mode), channel by channel, row-major.
    model = load_bundled(BUNDLED["bundled-cnn"])
    inside = dict(model.inside(digits.preprocess(digits.decode_image(png))))
    assert np.allclose(layers[0]["values"], inside["conv 1 (relu)"].ravel()[:600], atol=2e-3)
    assert np.allclose(body["logits"], inside["logits"], atol=1e-4)
    p = np.exp(inside["logits"] - inside["logits"].max())
    assert np.allclose(p / p.sum(), body["probabilities"], atol=1e-6)
