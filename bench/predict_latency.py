"""POST /api/predict latency against a live server: p50/p99 over 1,000 requests (goal p99 < 20 ms).

A real `gradscope serve` runs in a subprocess (bench/_server.py, its own temporary data
dir); one httpx client with keep-alive sends, one at a time, MNIST test digits drawn as a
canvas would send them: dark ink on white, 280x280, PNG (about 8 KB), as raw image/png
bodies. The clock is the client's, around the whole request (send, server, receive, JSON
parse). The server's Server-Timing header splits its own work into "preprocess" (PNG
decode + MNIST framing, server/digits.py) and "forward" (the 784-512-256-10 MLP in numpy);
the rest of the round trip is HTTP, FastAPI, the thread-pool hop and JSON. The same two
steps are also timed in this process, without a server, as a reference. Other cases: the
JSON pixel path (784 numbers), and a multipart upload.

    .venv/bin/python bench/predict_latency.py [--requests 1000] [--warmup 50] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _harness as H
import _server as S


def canvas_png(digit: np.ndarray) -> bytes:
    """An MNIST digit as the /draw page sends it: dark on white, 280x280, PNG."""
    ink = np.round((1 - digit) * 255).astype(np.uint8)
    img = Image.fromarray(ink).resize((280, 280), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def server_timing(header: str) -> dict[str, float]:
    """{"preprocess": ms, "forward": ms} from `preprocess;dur=1.2, forward;dur=0.3`."""
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        out[name] = float(dur)
    return out


def measure(
    send: Callable[[int], Any], n: int, warmup: int
) -> tuple[list[float], list[float], list[float], int]:
    """(round-trip ms, server preprocess ms, server forward ms, right answers) over n requests."""
    for i in range(warmup):
        send(i)
    total, pre, fwd, right = [], [], [], 0
    for i in range(n):
        t0 = time.perf_counter()
        r, label = send(i)
        body = r.json()
        total.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"request {i} answered {r.status_code}: {r.text}")
        timing = server_timing(r.headers["server-timing"])
        pre.append(timing["preprocess"])
        fwd.append(timing["forward"])
        right += body["digit"] == label
    return total, pre, fwd, right


def in_process(pngs: list[bytes], n: int) -> tuple[list[float], list[float]]:
    """(preprocess ms, forward ms) of the same work without the server."""
    from gradscope.server.digits import preprocess as digits
    from gradscope.server.digits.models import load_bundled

    model = load_bundled()
    pre, fwd = [], []
    for i in range(n):
        t0 = time.perf_counter()
        digit = digits.preprocess(digits.decode_image(pngs[i % len(pngs)]))
        t1 = time.perf_counter()
        model.probabilities(digit)
        t2 = time.perf_counter()
        pre.append((t1 - t0) * 1000)
        fwd.append((t2 - t1) * 1000)
    return pre, fwd


def row(name: str, values: list[float]) -> list[str]:
    d = S.distribution(values)
    return [name, str(d["count"]), *(f"{d[k]:.2f}" for k in ("p50", "p90", "p99", "max"))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--mnist-dir", default=None)
    args = ap.parse_args()

    from gradscope.engine.data import load_mnist

    mnist = S.mnist_dir(args.mnist_dir)
    x, y = load_mnist("test", directory=mnist, download=False)
    x = x.reshape(-1, 28, 28)
    n = args.requests
    picks = np.random.default_rng(0).choice(len(x), n, replace=False)
    pngs = [canvas_png(x[i]) for i in picks]
    labels = [int(y[i]) for i in picks]
    print(
        f"POST /api/predict, {n} requests after {args.warmup} warm-up, one at a time, keep-alive; "
        f"PNG 280x280 median {int(np.median([len(p) for p in pngs]))} bytes"
    )
    print(H.versions())
    rows = []
    with S.Server(mnist) as server:
        http = server.http
        url = f"{server.url}/api/predict"

        def png(i: int) -> tuple[Any, int]:
            k = i % n
            headers = {"content-type": "image/png"}
            return http.post(url, content=pngs[k], headers=headers), labels[k]

        def pixels(i: int) -> tuple[Any, int]:
            k = i % n
            return http.post(url, json={"pixels": x[picks[k]].ravel().tolist()}), labels[k]

        def multipart(i: int) -> tuple[Any, int]:
            k = i % n
            return http.post(url, files={"file": ("d.png", pngs[k], "image/png")}), labels[k]

        results = {}
        for name, send in (("png", png), ("pixels", pixels), ("multipart", multipart)):
            total, pre, fwd, right = measure(send, n, args.warmup)
            results[name] = (total, right)
            rows += [
                row(f"{name}: round trip (client)", total),
                row(f"{name}: server preprocess", pre),
                row(f"{name}: server forward", fwd),
            ]
    pre, fwd = in_process(pngs, n)
    rows += [row("in-process preprocess (PNG)", pre), row("in-process forward", fwd)]
    print()
    print(H.table(["what", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows))
    print()
    for name, (_, right) in results.items():
        print(f"{name}: {right}/{n} right ({right / n:.1%})")
    p99 = S.distribution(results["png"][0])["p99"]
    status = "met" if p99 < 20 else "NOT met"
    print(f"goal: PNG round trip p99 < 20 ms: {status} ({p99:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
