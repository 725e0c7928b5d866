"""Hardening of /api/predict (issue 22): an image's decoding cost is bounded before it is
decoded, predictions queue for a few slots, and parsing never blocks the event loop."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from tests.server.conftest import InProcess, Server, rss_mb


def png16_rgba(side: int) -> bytes:
    """A blank side x side PNG of 16-bit RGBA: tiny compressed, 8 bytes a pixel decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(side * 8) for _ in range(side))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def png_at_the_limit() -> bytes:
    """The costliest image that is decoded: 2,896 x 2,896 RGBA (32 MB), a digit drawn."""
    a = np.zeros((2896, 2896, 4), np.uint8)
    a[..., 3] = 255
    a[800:2000, 1300:1600, :3] = 255  # a "1"
    buf = io.BytesIO()
    Image.fromarray(a, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def test_a_bomb_of_decoded_bytes_is_refused_before_decoding(app: InProcess) -> None:
    data = png16_rgba(4096)
    assert len(data) < 200_000  # 130 KB on the wire, 128 MB decoded
    r = app.request("POST", "/api/predict", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 413, r.text
    assert "GRADSCOPE_MAX_DECODE_MB" in r.json()["detail"] and "128 MB" in r.json()["detail"]


def test_fifty_concurrent_worst_case_images_keep_the_server_small(module_server: Server) -> None:
    s = module_server
    assert s.proc is not None
    bomb, heavy = png16_rgba(4096), png_at_the_limit()

    def post(i: int) -> int:
        body = heavy if i % 5 == 0 else bomb  # 10 decoded at the limit, 40 bombs refused
        headers = {"content-type": "image/png"}
        r = s.request("POST", "/api/predict", content=body, headers=headers, timeout=120)
        return r.status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(post, range(50)))
    assert all(200 <= c < 500 for c in codes), codes
    assert codes.count(413) == 40 and set(codes) == {200, 413}, codes  # all served in turn
    assert rss_mb(s.proc.pid)[1] < 1500  # the peak
    assert s.request("GET", "/api/presets").status_code == 200


def test_a_slow_multipart_body_does_not_freeze_other_requests(module_server: Server) -> None:
    s = module_server
    boundary = "b"
    part = f"--{boundary}\r\n\r\n".encode()
    body = part * (300_000 // len(part)) + f"--{boundary}--\r\n".encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    done = threading.Event()
    answers: list[int] = []

    def slow() -> None:
        r = s.request("POST", "/api/predict", content=body, headers=headers, timeout=300)
        answers.append(r.status_code)
        done.set()

    threading.Thread(target=slow, daemon=True).start()
    time.sleep(0.5)
    worst = 0.0
    while not done.is_set() and worst < 30:
        t0 = time.monotonic()
        assert s.request("GET", "/api/presets", timeout=60).status_code == 200
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.1)
    done.wait(300)
    assert answers and 400 <= answers[0] < 500, answers
    assert worst < 5, worst  # on the event loop, each waited for the whole parse


def test_predictions_beyond_the_queue_get_a_429_with_retry_after() -> None:
    import asyncio

    from fastapi import HTTPException

    from gradscope.server.web.api.predict import Predictions

    async def scenario() -> tuple[int, dict[str, str], int]:
        turns = Predictions(1)
        release = asyncio.Event()

        async def hold() -> None:
            async with turns.turn():
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(17)]  # 1 running, 16 waiting
        await asyncio.sleep(0.05)
        try:
            async with turns.turn():
                raise AssertionError("the 18th prediction was let in")
        except HTTPException as e:
            status, headers = e.status_code, dict(e.headers or {})
        release.set()
        await asyncio.gather(*tasks)
        return status, headers, turns.waiting

    # In a thread: a Playwright test earlier in this worker may hold a running loop here.
    with ThreadPoolExecutor(1) as pool:
        status, headers, waiting = pool.submit(asyncio.run, scenario()).result(timeout=60)
    assert status == 429 and headers["Retry-After"] == "1" and waiting == 0
