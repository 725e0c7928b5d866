"""Frames delivered to a watcher of a paced run: how many distinct frames a second reach a
websocket client, how fresh they are, and what they cost in bytes.

A real `gradscope serve` runs in a subprocess (bench/_server.py). For each preset the script
starts a run at the preset's own pace (the small presets last 20-60 s, a frame every step up
to 60 a second), connects one websocket client (permessage-deflate, as a browser) for
--seconds, then stops the run. A frame is counted once per distinct step of its `boundary`
event (or `health` for sets without a boundary). "Frames/s" divides the distinct frame steps
received by the seconds between the first and the last; "pace" is what the preset asks for,
so frames/s / pace is the share of steps a watcher sees drawn; "age p50/p99" is how old a
frame's event is when it arrives (the worker's wall time `t` to the client's).

    .venv/bin/python bench/frames.py [--seconds 6] [--presets moons,spiral,napkin-average]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H
from _server import Server, distribution, mnist_dir

DEFAULT = "moons,spiral,micrograd-classifier,napkin-average"


async def _watch(url: str, seconds: float) -> tuple[list[tuple[float, str]], int]:
    """(arrival time, raw message) for `seconds`, and the hello's size in bytes."""
    from websockets.asyncio.client import connect

    out: list[tuple[float, str]] = []
    async with connect(url, max_size=None, open_timeout=30, compression="deflate") as ws:
        hello = await ws.recv()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = await asyncio.wait_for(ws.recv(), left)
                out.append((time.time(), text))  # stamped on arrival
            except TimeoutError:
                break
    return out, len(hello)


def measure(server: Server, preset: str, seconds: float) -> dict[str, Any]:
    from gradscope.server.runs.config import PRESETS

    pace = PRESETS[preset].config.pace
    run = server.create(preset, {"pace": pace})
    deadline = time.monotonic() + 60
    while server.run(run["id"])["state"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    messages, _ = asyncio.run(_watch(f"{server.ws_url}/ws/runs/{run['id']}", seconds))
    server.http.post(f"{server.url}/api/runs/{run['id']}/stop")
    kind = (
        "boundary"
        if PRESETS[preset].config.dataset.name not in ("rectangles", "tiny")
        else "health"
    )
    first: dict[int, float] = {}
    ages = []
    nbytes = 0
    for t, text in messages:
        nbytes += len(text)
        for e in json.loads(text).get("events", ()):
            if e["type"] == kind and e["step"] not in first:
                first[e["step"]] = t
                ages.append(1000 * (t - e["t"]))
    times = sorted(first.values())
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    age = distribution(ages)
    return {
        "preset": preset,
        "pace": pace,
        "frames": len(first),
        "frames/s": (len(times) - 1) / span if span == span else float("nan"),
        "age p50 ms": age["p50"],
        "age p99 ms": age["p99"],
        "KB/s": nbytes / 1024 / seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds watched per preset")
    ap.add_argument("--presets", default=DEFAULT, help="comma-separated presets")
    ap.add_argument("--mnist-dir", default=None)
    args = ap.parse_args()
    rows = []
    with Server(mnist_dir(args.mnist_dir)) as server:
        for preset in [p for p in args.presets.split(",") if p]:
            r = measure(server, preset, args.seconds)
            rows.append(
                [
                    r["preset"],
                    f"{r['pace']:g}",
                    r["frames"],
                    f"{r['frames/s']:.1f}",
                    f"{r['frames/s'] / r['pace']:.2f}",
                    f"{r['age p50 ms']:.0f}",
                    f"{r['age p99 ms']:.0f}",
                    f"{r['KB/s']:.0f}",
                ]
            )
    headers = ["preset", "pace", "frames", "frames/s", "frames/step", "age p50 ms", "p99", "KB/s"]
    print(H.table(headers, rows))
    print(H.versions())


if __name__ == "__main__":
    main()
