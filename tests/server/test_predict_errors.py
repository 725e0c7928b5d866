"""Every bad input to /api/predict gets its 4xx and a message naming the problem, never a 500."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.server.conftest import Server, live_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    with live_server(tmp_path_factory.mktemp("predict-errors"), real_mnist) as s:
        yield s


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def image_bytes(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def post(srv: Server, body: bytes, content_type: str) -> tuple[int, str]:
    r = srv.request("POST", "/api/predict", content=body, headers={"content-type": content_type})
    detail = r.json().get("detail", "")
    return r.status_code, detail if isinstance(detail, str) else json.dumps(detail)


def drawn_png() -> bytes:
    img = Image.new("L", (280, 280), 255)
    img.paste(0, (130, 40, 150, 240))  # a thick vertical bar: a 1
    return image_bytes(img, "PNG")


IMAGES = [
    ("white canvas", image_bytes(Image.new("L", (280, 280), 255), "PNG"), 422, "nothing drawn"),
    ("black canvas", image_bytes(Image.new("L", (280, 280), 0), "PNG"), 422, "nothing drawn"),
    (
        "transparent canvas",
        image_bytes(Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "PNG"),
        422,
        "nothing drawn",
    ),
    ("blank jpeg", image_bytes(Image.new("RGB", (64, 64), "white"), "JPEG"), 422, "nothing drawn"),
    ("empty body", b"", 422, "empty"),
    ("text", b"this is not an image", 422, "not a PNG or JPEG"),
    ("gif", image_bytes(Image.new("L", (28, 28), 255), "GIF"), 422, "not a PNG or JPEG"),
    ("bmp", image_bytes(Image.new("L", (28, 28), 255), "BMP"), 422, "not a PNG or JPEG"),
    ("truncated png", drawn_png()[:200], 422, "corrupt or truncated"),
    ("bomb over our cap", png_claiming(20_000, 20_000), 413, "pixels"),
    ("bomb over Pillow's limit", png_claiming(100_000, 100_000), 413, "pixels"),
    ("too big", b"\x89PNG" + b"\0" * (1024 * 1024), 413, "over 1,048,576 bytes"),
]


@pytest.mark.parametrize(("name", "body", "status", "message"), IMAGES, ids=[i[0] for i in IMAGES])
def test_bad_images(srv: Server, name: str, body: bytes, status: int, message: str) -> None:
    code, detail = post(srv, body, "image/png")
    assert (code, message in detail) == (status, True), detail
    # The same file as a multipart upload gets the same answer.
    r = srv.request("POST", "/api/predict", files={"file": ("x.png", body, "image/png")})
    assert r.status_code == status and message in r.json()["detail"], r.text


def test_unsupported_content_types(srv: Server) -> None:
    for ctype in ("image/gif", "text/plain", "application/octet-stream", ""):
        code, detail = post(srv, drawn_png(), ctype)
        assert code == 415 and "unsupported content type" in detail, detail
    r = srv.request("POST", "/api/predict", files={"image": ("x.png", drawn_png(), "image/png")})
    assert r.status_code == 422 and "no `file` field" in r.json()["detail"]
    code, detail = post(srv, b"--x\r\n\r\n", "multipart/form-data")
    assert code == 422, detail
    too_big = srv.request(
        "POST", "/api/predict", files={"file": ("x.png", b"\0" * (1024 * 1024 + 1), "image/png")}
    )
    assert too_big.status_code == 413


def _pixels(values: object, **extra: object) -> dict:
    return {"pixels": values, **extra}


PIXELS = [
    ("blank", _pixels([0.0] * 784), "nothing drawn"),
    ("blank, as is", _pixels([0.0] * 784, preprocess=False), "nothing drawn"),
    ("783 values", _pixels([0.5] * 783), "expected 784 values (28x28), got 783"),
    ("785 values", _pixels([0.5] * 785), "got 785"),
    ("27 rows", _pixels([[0.5] * 28] * 27), "expected 28 rows of 28 values, got 27 rows"),
    ("a short row", _pixels([[0.5] * 28] * 27 + [[0.5] * 27]), "of lengths [27, 28]"),
    ("empty", _pixels([]), "pixels"),
    ("above 1", _pixels([0.0] * 100 + [1.5] + [0.0] * 683), "pixels[100] is 1.5"),
    ("below 0", _pixels([-0.25] + [0.0] * 783), "pixels[0] is -0.25"),
    ("a string", _pixels("abc"), "pixels"),
    ("a text value", _pixels(["dark"] + [0.0] * 783), "pixels"),
    ("unknown field", _pixels([0.0] * 784, colour="red"), "colour"),
    ("no pixels", {"model": "bundled"}, "pixels"),
]


@pytest.mark.parametrize(("name", "body", "message"), PIXELS, ids=[p[0] for p in PIXELS])
def test_bad_pixels(srv: Server, name: str, body: dict, message: str) -> None:
    code, detail = post(srv, json.dumps(body).encode(), "application/json")
    assert code == 422 and message in detail, detail


def test_non_finite_and_broken_json(srv: Server) -> None:
    for token in ("NaN", "Infinity", "-Infinity"):
        body = '{"pixels": [' + token + ", " + ", ".join(["0"] * 783) + "]}"
        code, detail = post(srv, body.encode(), "application/json")
        assert code == 422 and "pixels[0]" in detail and "finite" in detail, detail
    code, detail = post(srv, b'{"pixels": [0, 0', "application/json")
    assert code == 422 and "not valid JSON" in detail, detail
    code, detail = post(srv, b"[1, 2, 3]", "application/json")
    assert code == 422, detail
    code, detail = post(srv, b"[" * 200_000, "application/json")  # nested past recursion
    assert code == 422 and "not valid JSON" in detail, detail
    code, detail = post(srv, '{"pixels": "\u00e9"}'.encode("latin-1"), "application/json")
    assert code == 422, detail


def test_still_serving_after_bad_input(srv: Server) -> None:
    code, _ = post(srv, png_claiming(100_000, 100_000), "image/png")
    assert code == 413
    r = srv.request(
        "POST", "/api/predict", content=drawn_png(), headers={"content-type": "image/png"}
    )
    assert r.status_code == 200 and r.json()["digit"] == 1, r.text
