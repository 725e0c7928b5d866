"""Opening /compare on 20 runs of 100,000 steps each: how long until the page has drawn.

The script writes 20 synthetic finished runs through Store.append_events, as the training
loop writes them (steps as StepLoss tuples in commits of 300, test figures every 250-step
epoch, a health record every 1000 steps), 4 learning rates x 5 seeds, then starts a real
`gradscope serve` on that data dir and measures, over --rounds rounds (median, min, max):

- api: GET /api/compare?runs=<all 20>&points=1000 (a line a run), and the same grouped by
  optimizer.lr (4 means with bands), and on a time axis; seconds and bytes.
- page: headless Chromium opening /compare?runs=<all 20>&group=optimizer.lr until the page
  says it has drawn (#compare[data-ready=true]): HTML, scripts, the request, the chart, the
  table and the parallel coordinates. Skipped when /usr/bin/chromium is missing.

    .venv/bin/python bench/compare_load.py [--runs 20] [--steps 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H
import _server as S

from gradscope.server.store import Store

CHROMIUM = "/usr/bin/chromium"
LRS = (0.003, 0.01, 0.03, 0.1)
PARAMS = ("0.weight", "0.bias", "2.weight", "2.bias")


def write_run(store: Store, steps: int, lr: float, seed: int) -> str:
    """A finished synthetic run of `steps` steps (a loss that falls faster for a larger lr)."""
    config = {"optimizer": {"name": "sgd", "lr": lr}, "seed": seed, "steps": steps}
    run_id = store.create_run(
        config, preset=None, name=f"lr {lr} seed {seed}", source="cli", total_steps=steps
    ).id
    store.set_state(run_id, "running")
    rng = np.random.default_rng(seed)
    s = np.arange(steps + 1)
    loss = (1 / np.sqrt(1 + lr * s) + 0.05 * rng.random(steps + 1)).tolist()
    for first in range(1, steps + 1, 300):
        batch: list[Any] = []
        for step in range(first, min(first + 300, steps + 1)):
            batch.append((step, float(step) / 1000, step // 250, loss[step]))
            if step % 250 == 0:
                data = {
                    "epoch": step // 250,
                    "test_loss": loss[step],
                    "test_acc": 1 - loss[step] / 2,
                }
                batch.append({"type": "metrics", "step": step, "data": data})
            if step % 1000 == 0:
                health = {
                    "grad_norm": {p: float(rng.random()) for p in PARAMS},
                    "update_ratio": {p: float(rng.random()) / 100 for p in PARAMS},
                    "dead_relu": {"1": 0.1},
                }
                batch.append(store.encode({"type": "health", "step": step, "data": health}))  # type: ignore[typeddict-item]
        store.append_events(run_id, batch, {"step": min(first + 299, steps)})
    store.set_state(run_id, "finished")
    return run_id


def timed(fn: Any, rounds: int) -> tuple[list[float], Any]:
    """Seconds of each of `rounds` calls (after one warm-up), and the last result."""
    result = fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def page_load(url: str, rounds: int) -> list[float] | None:
    """Seconds from navigation to #compare[data-ready=true] in headless Chromium."""
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        times = []
        for i in range(rounds + 1):
            t0 = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("#compare[data-ready=true]", timeout=120_000)
            if i:  # the first: warm-up (the browser's caches, the server's first reads)
                times.append(time.perf_counter() - t0)
        browser.close()
    return times


def stats(times: list[float]) -> str:
    return (
        f"{1000 * statistics.median(times):.0f} ms "
        f"(min {1000 * min(times):.0f}, max {1000 * max(times):.0f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mnist-dir", default=None)
    args = ap.parse_args()
    server = S.Server(S.mnist_dir(args.mnist_dir))
    t0 = time.perf_counter()
    store = Store(server.data_dir)
    ids = [write_run(store, args.steps, LRS[i % len(LRS)], i // len(LRS)) for i in range(args.runs)]
    store.close()
    print(f"wrote {args.runs} runs of {args.steps:,} steps in {time.perf_counter() - t0:.1f} s")
    runs = ",".join(ids)
    rows = []
    with server:
        http = server.http
        for label, params in (
            ("api: a line a run", {"runs": runs, "points": 1000}),
            ("api: grouped by lr", {"runs": runs, "points": 1000, "group": "optimizer.lr"}),
            ("api: time axis", {"runs": runs, "points": 1000, "x": "time"}),
        ):
            times, r = timed(
                lambda p=params: http.get(f"{server.url}/api/compare", params=p), args.rounds
            )
            r.raise_for_status()
            rows.append((label, stats(times), f"{len(r.content):,} bytes"))
        times, r = timed(
            lambda: http.get(f"{server.url}/compare", params={"runs": runs}), args.rounds
        )
        rows.append(("GET /compare (HTML)", stats(times), f"{len(r.content):,} bytes"))
        loads = page_load(f"{server.url}/compare?runs={runs}&group=optimizer.lr", args.rounds)
        rows.append(("page: open until drawn", stats(loads) if loads else "no Chromium", ""))
    print(H.table(["what", "time", "size"], rows))
    print(H.versions())


if __name__ == "__main__":
    main()
