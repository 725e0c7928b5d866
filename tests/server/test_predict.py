"""/api/predict and the bundled model: real MNIST, a real server, the drawing path end to end."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from gradscope.engine.data import load_mnist
from gradscope.engine.inference import forward, module_forward
from gradscope.server.cli import main
from gradscope.server.digits import preprocess as digits
from gradscope.server.digits.models import BUNDLED, BUNDLED_BASE, load_bundled
from gradscope.server.runs.data import MNIST_MEAN, MNIST_STD
from tests.server.conftest import Server, live_server

DRAWN = 1000  # MNIST test digits sent through the drawing path
CNN_DRAWN = 300  # of them, also sent to the bundled CNN (a subset: each PNG costs ~15 ms)


@pytest.fixture(scope="module")
def mnist_test(real_mnist: Path) -> tuple[np.ndarray, np.ndarray]:
    """The real test split: (10000, 28, 28) float32 in [0, 1], labels."""
    x, y = load_mnist("test", directory=real_mnist, download=False)
    return x.reshape(-1, 28, 28), y


@pytest.fixture(scope="module")
def predict_server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    with live_server(tmp_path_factory.mktemp("predict"), real_mnist) as s:
        yield s


def canvas_png(digit: np.ndarray, size: int = 280, fmt: str = "PNG") -> bytes:
    """An MNIST digit as a canvas would send it: dark ink on white, upscaled smoothly."""
    ink = np.round((1 - digit) * 255).astype(np.uint8)
    img = Image.fromarray(ink).resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def post_png(server: Server, png: bytes, multipart: bool = False, **params: str) -> httpx.Response:
    if multipart:
        return server.request(
            "POST", "/api/predict", files={"file": ("d.png", png, "image/png")}, params=params
        )
    return server.request(
        "POST",
        "/api/predict",
        content=png,
        headers={"content-type": "image/png"},
        params=params,
    )


def test_bundled_cnn_reaches_99_2_percent(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = mnist_test
    assert BUNDLED["bundled-cnn"].with_suffix(".npz").stat().st_size < 500_000
    model = load_bundled(BUNDLED["bundled-cnn"])
    assert model.net is not None and not model.net.training  # eval: BatchNorm's running stats
    assert (model.id, model.info["preset"]) == ("bundled-cnn", "mnist-cnn")
    inputs = ((x - MNIST_MEAN) / MNIST_STD).astype(np.float32).reshape(-1, 1, 28, 28)
    accuracy = float((module_forward(model.net, inputs).argmax(axis=1) == y).mean())
    assert accuracy >= 0.992 and accuracy == pytest.approx(model.info["test_acc"], abs=1e-4)
    probs = model.probabilities(x[0])
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-9 and probs.argmax() == y[0]


def test_bundled_model_reaches_98_percent(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = mnist_test
    assert BUNDLED_BASE.with_suffix(".npz").stat().st_size < 3_000_000
    model = load_bundled()  # no store, no training: the committed .npz + .json
    assert (model.mean, model.std) == (MNIST_MEAN, MNIST_STD)  # as the trainer standardized
    inputs = ((x.reshape(-1, 784) - MNIST_MEAN) / MNIST_STD).astype(np.float32)
    accuracy = float((forward(model.layers, inputs).argmax(axis=1) == y).mean())
    assert accuracy >= 0.98, accuracy
    # One digit through DigitModel itself agrees with the batch pass.
    probs = model.probabilities(x[0])
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-9 and probs.argmax() == y[0]


def test_preprocessing_restores_mnist_framing(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    """A digit shown at 10x (nearest) comes back as it was; smoothed, nearly; centred by mass."""
    x, _ = mnist_test
    errors = []
    for digit in x[:50]:
        sharp = Image.fromarray(np.round((1 - digit) * 255).astype(np.uint8)).resize(
            (280, 280), Image.Resampling.NEAREST
        )
        buf = io.BytesIO()
        sharp.save(buf, "PNG")
        framed = digits.preprocess(digits.decode_image(buf.getvalue()))
        # The ink's peak is scaled to 1; only edge pixels fainter than the threshold may go.
        error = np.abs(framed - digit / digit.max())
        assert error.max() < digits.INK_THRESHOLD and error.mean() < 1e-3
        smooth = digits.preprocess(digits.decode_image(canvas_png(digit)))
        errors.append(float(np.abs(smooth - digit).mean()))
        cy, cx = digits.centre_of_mass(smooth)
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
        rows, cols = np.flatnonzero(smooth.any(axis=1)), np.flatnonzero(smooth.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == 20
    # Smoothing blurs by about a pixel, and the centre may round the other way: close, not equal.
    assert np.mean(errors) < 0.05 and max(errors) < 0.15, errors


def test_drawing_path_1000_pngs(
    predict_server: Server, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    """1,000 test digits as dark-on-light 280x280 PNGs through a live server: >= 97% right;
    the first 300 of them also through the bundled CNN, which reads them at least as well."""
    x, y = mnist_test
    picks = np.random.default_rng(7).choice(len(x), DRAWN, replace=False)
    right = flagged = 0
    subset = {"bundled": 0, "bundled-cnn": 0}  # right answers on the first CNN_DRAWN
    with httpx.Client(base_url=predict_server.url, timeout=60) as client:
        for n, i in enumerate(picks):
            png = canvas_png(x[i])
            if n % 2:  # half as multipart uploads, half as raw bodies
                r = client.post("/api/predict", files={"file": ("d.png", png, "image/png")})
            else:
                r = client.post("/api/predict", content=png, headers={"content-type": "image/png"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model"] == "bundled" and len(body["probabilities"]) == 10
            right += body["digit"] == y[i]
            flagged += body["typical"]["unlike_digits"]
            if n < CNN_DRAWN:
                subset["bundled"] += body["digit"] == y[i]
                cnn = client.post(
                    "/api/predict",
                    content=png,
                    headers={"content-type": "image/png"},
                    params={"model": "bundled-cnn"},
                )
                assert cnn.status_code == 200 and cnn.json()["model"] == "bundled-cnn", cnn.text
                subset["bundled-cnn"] += cnn.json()["digit"] == y[i]
    assert right / DRAWN >= 0.97, right / DRAWN
    assert subset["bundled-cnn"] >= subset["bundled"], subset
    # Calibrated to flag 1% of the test set: redrawn digits are flagged little more often.
    assert flagged / DRAWN <= 0.03, flagged / DRAWN


def test_prediction_body(predict_server: Server, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = mnist_test
    r = post_png(predict_server, canvas_png(x[0]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"digit", "probabilities", "model", "input", "logits", "typical"}
    assert body["digit"] == y[0] == int(np.argmax(body["probabilities"]))
    assert abs(sum(body["probabilities"]) - 1) < 1e-6
    seen = np.array(body["input"])
    assert seen.shape == (28, 28) and seen.min() >= 0 and seen.max() <= 1
    assert np.abs(seen - x[0]).mean() < 0.08  # what the model saw is the MNIST digit again
    timing = r.headers["server-timing"]
    assert "preprocess;dur=" in timing and "forward;dur=" in timing
    # A JPEG, and the JSON array path: 784 values, 28 rows, and as-is (no framing).
    jpeg = post_png(predict_server, canvas_png(x[1], fmt="JPEG"))
    assert jpeg.status_code == 200 and jpeg.json()["digit"] == y[1]
    flat = predict_server.request("POST", "/api/predict", json={"pixels": x[2].ravel().tolist()})
    assert flat.status_code == 200 and flat.json()["digit"] == y[2]
    rows = predict_server.request(
        "POST", "/api/predict", json={"pixels": x[3].tolist(), "preprocess": False}
    )
    assert rows.status_code == 200 and rows.json()["digit"] == y[3]
    assert np.allclose(np.array(rows.json()["input"]), x[3], atol=5e-4)
    # Dark-on-light pixels (a light background) are inverted like an image.
    light = predict_server.request("POST", "/api/predict", json={"pixels": (1 - x[4]).tolist()})
    assert light.status_code == 200 and light.json()["digit"] == y[4]


def test_openapi_documents_every_body(predict_server: Server) -> None:
    docs = predict_server.request("GET", "/openapi.json").json()
    op = docs["paths"]["/api/predict"]["post"]
    kinds = set(op["requestBody"]["content"])
    assert kinds == {"application/json", "multipart/form-data", "image/png", "image/jpeg"}
    assert {"404", "409", "413", "415", "422"} <= set(op["responses"])
    assert "/api/models" in docs["paths"]


def _finished(server: Server, preset: str, **config: object) -> str:
    run = server.create(preset, **config)
    server.wait_for(run["id"], lambda r: r["state"] == "finished", timeout=120)
    return run["id"]


def test_finished_runs_can_be_picked(
    predict_server: Server, mnist_test: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, _ = mnist_test
    png = canvas_png(x[0])
    # A short MNIST run: not accurate, but finished, with a final checkpoint.
    run_id = _finished(
        predict_server, "mnist-mlp", steps=40, dataset={"name": "mnist", "mnist_train_limit": 4000}
    )
    listed = predict_server.request("GET", "/api/models").json()["models"]
    assert listed[0]["id"] == "bundled" and listed[0]["test_acc"] >= 0.98
    assert listed[1]["id"] == "bundled-cnn" and listed[1]["test_acc"] >= 0.992
    assert run_id in {m["id"] for m in listed if m["kind"] == "run"}
    r = post_png(predict_server, png, model=run_id)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == run_id
    by_field = predict_server.request(
        "POST", "/api/predict", json={"pixels": x[0].tolist(), "model": run_id}
    )
    assert by_field.status_code == 200 and by_field.json()["model"] == run_id
    multipart = predict_server.request(
        "POST",
        "/api/predict",
        files={"file": ("d.png", png, "image/png")},
        data={"model": run_id},
    )
    assert multipart.status_code == 200 and multipart.json()["model"] == run_id
    # export-model writes the same weights as a model /draw can load without the store.
    data_dir = predict_server.data_dir
    code = main(["export-model", run_id, "--out", str(tmp_path), "--data-dir", str(data_dir)])
    assert code == 0
    exported = load_bundled(tmp_path / "mnist")
    probs = exported.probabilities(np.array(r.json()["input"], dtype=np.float32))
    assert np.allclose(probs, r.json()["probabilities"], atol=1e-3)


def test_unusable_models(
    predict_server: Server,
    mnist_test: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    png = canvas_png(mnist_test[0][0])
    for model in ("nope", "0123456789ab", "../../etc/passwd"):
        r = post_png(predict_server, png, model=model)
        assert r.status_code == 404 and "no model" in r.json()["detail"], r.text
    r = predict_server.request(
        "POST", "/api/predict", json={"pixels": mnist_test[0][0].tolist(), "model": "0123456789ab"}
    )
    assert r.status_code == 404
    # An MNIST run still training: 409, and after it is stopped (not finished) still 409.
    long = predict_server.create("mnist-mlp", steps=1_000_000)
    predict_server.wait_for(long["id"], lambda r: r["state"] in ("queued", "running"))
    r = post_png(predict_server, png, model=long["id"])
    assert r.status_code == 409 and "not finished" in r.json()["detail"], r.text
    assert predict_server.request("POST", f"/api/runs/{long['id']}/stop").status_code == 200
    predict_server.wait_for(long["id"], lambda r: r["state"] == "stopped")
    r = post_png(predict_server, png, model=long["id"])
    assert r.status_code == 409 and "stopped, not finished" in r.json()["detail"], r.text
    # A finished run that is not MNIST: 409 naming its data set; it is not offered either.
    moons = _finished(predict_server, "moons", steps=20)
    r = post_png(predict_server, png, model=moons)
    assert r.status_code == 409 and "moons, not MNIST" in r.json()["detail"], r.text
    listed = {m["id"] for m in predict_server.request("GET", "/api/models").json()["models"]}
    assert moons not in listed and long["id"] not in listed
    # export-model refuses what /api/predict refuses, with the same reason.
    data_dir = str(predict_server.data_dir)
    assert main(["export-model", long["id"], "--out", str(tmp_path), "--data-dir", data_dir]) == 1
    assert "stopped, not finished" in capsys.readouterr().err
    assert (
        main(["export-model", "0123456789ab", "--out", str(tmp_path), "--data-dir", data_dir]) == 1
    )
    assert "no run with id" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
