"""Opening a finished run: the hello with its history and frame, against a replay of every event.

For each run length the script writes a synthetic finished run through Store.append_events,
as the training loop writes it (steps as StepLoss tuples in commits of 300, test figures
every 250-step epoch, and a frame every 1000 steps: weights of a 337-parameter net, health,
a 40x40 decision boundary, the moons run's kinds), then measures

- new: a real `gradscope serve` on that data dir; a websocket client connects to
  /ws/runs/{id} and receives the hello (history of every series + the head frame), which is
  all a finished run sends: open time is connect -> hello received, bytes are its JSON text.
- old: the previous protocol, a replay of every event in batches of 1000
  (`hub.events_message`), timed in this process: store.events by batches + JSON encoding,
  so without the socket, the sending or the browser's parsing (a lower bound).
- history: Store.history of every series over the whole run, a zoom of 10,000 steps, and a
  rebuild (a run from before the summaries: built from its events on first read).
- commit: the cost the summaries add to Store.append_events, for a 300-step commit alone
  and one that also holds a weights and a health record (summaries on/off in turns).

    .venv/bin/python bench/history.py [--steps 200000 1000000] [--rounds 3] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H
import _server as S

from gradscope.server.store import Store, blocks, series
from gradscope.server.stream.hub import BATCH, events_message

PARAMS = {"0.weight": 32, "0.bias": 16, "2.weight": 256, "2.bias": 16, "4.weight": 16, "4.bias": 1}


def frame_events(step: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A record as a moons run makes it: weights, health and a decision boundary."""
    params = {name: rng.standard_normal(n).tolist() for name, n in PARAMS.items()}
    health = {
        "grad_norm": {name: float(rng.random()) for name in PARAMS},
        "update_ratio": {name: float(rng.random()) / 100 for name in PARAMS},
        "dead_relu": {"1": 0.1, "3": 0.2},
    }
    return [
        {
            "type": "weights",
            "step": step,
            "data": {"params": params, "shapes": {}, "structure": {}},
        },
        {"type": "health", "step": step, "data": health},
        {
            "type": "boundary",
            "step": step,
            "data": {"grid": 40, "bounds": [-2, 3, -2, 2], "values": rng.random(1600).tolist()},
        },
    ]


def write_run(store: Store, steps: int) -> str:
    """A finished synthetic run of `steps` steps, written as the loop writes one."""
    run_id = store.create_run({}, preset=None, name="bench", source="cli", total_steps=steps).id
    store.set_state(run_id, "running")
    rng = np.random.default_rng(0)
    loss = (1 / np.sqrt(1 + np.arange(steps + 1)) + 0.05 * rng.random(steps + 1)).tolist()
    for first in range(1, steps + 1, 300):
        batch: list[Any] = []
        for s in range(first, min(first + 300, steps + 1)):
            batch.append((s, float(s), s // 250, loss[s]))
            if s % 250 == 0:
                batch.append(
                    {
                        "type": "metrics",
                        "step": s,
                        "data": {"epoch": s // 250, "test_loss": loss[s], "test_acc": 0.9},
                    }
                )
            if s % 1000 == 0:
                batch += [store.encode(e) for e in frame_events(s, rng)]  # type: ignore[misc]
        store.append_events(run_id, batch, {"step": min(first + 299, steps)})
    store.set_state(run_id, "finished")
    return run_id


def old_replay(store: Store, run_id: str) -> tuple[float, int, int]:
    """(seconds, bytes, events): every event read and encoded in batches, as the hub sent them."""
    t0, size, count, since = time.perf_counter(), 0, 0, 0
    while rows := store.events(run_id, since, BATCH):
        size += len(events_message(rows).encode())
        count += len(rows)
        since = rows[-1]["seq"]
    return time.perf_counter() - t0, size, count


def open_hello(ws_url: str, run_id: str) -> tuple[float, int, dict[str, Any]]:
    """(seconds, bytes, hello) of one connect -> hello over a real websocket."""
    from websockets.sync.client import connect

    t0 = time.perf_counter()
    with connect(
        f"{ws_url}/ws/runs/{run_id}", open_timeout=60, max_size=None, compression=None
    ) as ws:
        text = ws.recv(timeout=120)
        seconds = time.perf_counter() - t0
    return seconds, len(text.encode() if isinstance(text, str) else text), json.loads(text)


def timed(call: Any, rounds: int) -> float:
    """The median seconds of `rounds` calls."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextlib.contextmanager
def summaries_off() -> Iterator[None]:
    """Store.append_events without the series summaries (for the added cost)."""
    saved = blocks.aggregate, blocks.write, series.commit_samples
    blocks.aggregate = lambda samples: ([], None, None, None)  # type: ignore[assignment]
    blocks.write = lambda *args: None  # type: ignore[assignment]
    series.commit_samples = lambda events: None  # type: ignore[assignment]
    try:
        yield
    finally:
        blocks.aggregate, blocks.write, series.commit_samples = saved


def commit_cost(record: bool, commits: int = 400) -> dict[str, float]:
    """Median microseconds of a 300-step append_events, summaries on and off, in turns."""
    rng = np.random.default_rng(1)
    out: dict[str, list[float]] = {"on": [], "off": []}
    for mode in ("off", "on", "off", "on"):
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            if mode == "off":
                stack.enter_context(summaries_off())
            store = Store(Path(tmp))
            run_id = store.create_run({}, preset=None, name="c", source="cli", total_steps=1).id
            times = []
            for c in range(commits):
                batch: list[Any] = [
                    (s, 0.0, s // 250, 1.0 / s) for s in range(c * 300 + 1, c * 300 + 301)
                ]
                if record:
                    batch += [store.encode(e) for e in frame_events(c * 300 + 300, rng)[:2]]  # type: ignore[misc]
                t0 = time.perf_counter()
                store.append_events(run_id, batch)
                times.append(time.perf_counter() - t0)
            store.close()
            out[mode].append(statistics.median(times[50:]) * 1e6)
    on, off = min(out["on"]), min(out["off"])
    return {"on": on, "off": off, "added": on - off}


def measure(steps: int, args: argparse.Namespace) -> list[str]:
    """One run length's row of the table."""
    server = S.Server(S.mnist_dir(args.mnist_dir))
    store = Store(server.data_dir)
    t0 = time.perf_counter()
    run_id = write_run(store, steps)
    wrote = time.perf_counter() - t0
    middle = steps // 2
    whole = timed(lambda: store.history(run_id), args.rounds)
    zoom = timed(lambda: store.history(run_id, start=middle, end=middle + 9999), args.rounds)
    frame = timed(lambda: store.frame(run_id, at=middle + 500), args.rounds)
    with sqlite_conn(store) as conn:  # as if written before the summaries existed
        conn.execute("INSERT INTO series_pending (run_id) VALUES (?)", (run_id,))
    t0 = time.perf_counter()
    store.history(run_id)  # rebuilds from the events first
    rebuild = time.perf_counter() - t0
    old_s, old_bytes, events = old_replay(store, run_id)
    store.close()
    with server:
        opens = [open_hello(server.ws_url, run_id) for _ in range(args.rounds)]
    new_s = statistics.median(o[0] for o in opens)
    new_bytes, hello = opens[0][1], opens[0][2]
    buckets = sum(len(s["step"]) for s in hello["history"]["series"].values())
    print(
        f"# {steps:,} steps: {events:,} events written in {wrote:.1f} s; hello: "
        f"{len(hello['history']['series'])} series, {buckets:,} buckets, frame at step "
        f"{hello['frame']['step']:,} with {len(hello['frame']['events'])} events",
        flush=True,
    )
    return [
        f"{steps:,} steps",
        f"{old_s:.1f} s",
        f"{old_bytes / 1e6:.1f} MB",
        f"{new_s * 1000:.0f} ms",
        f"{new_bytes / 1e3:.0f} kB",
        f"{old_s / new_s:.0f}x",
        f"{whole * 1000:.1f} ms",
        f"{zoom * 1000:.1f} ms",
        f"{frame * 1000:.2f} ms",
        f"{rebuild:.2f} s",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--rounds", type=int, default=3, help="opens and reads timed per run")
    ap.add_argument("--mnist-dir", default=None)
    args = ap.parse_args()
    t_start = time.monotonic()
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {H.versions()}")
    rows = [measure(steps, args) for steps in args.steps]
    headers = [
        "finished run",
        "old: replay",
        "old: bytes",
        "new: hello",
        "new: bytes",
        "faster",
        "history (all)",
        "zoom 10k",
        "frame",
        "rebuild",
    ]
    print()
    print(H.table(headers, rows))
    print()
    names = ("steps only", "+ weights and health record")
    cost = [commit_cost(False), commit_cost(True)]
    print(
        H.table(
            ["append_events, 300 steps", "without summaries", "with", "added"],
            [
                [name, f"{c['off']:.0f} us", f"{c['on']:.0f} us", f"{c['added']:.0f} us"]
                for name, c in zip(names, cost, strict=True)
            ],
        )
    )
    print(f"# {time.monotonic() - t_start:.0f} s")


@contextlib.contextmanager
def sqlite_conn(store: Store) -> Iterator[Any]:
    """A plain connection to the store's file (to mark a run as from before the summaries)."""
    import sqlite3

    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


if __name__ == "__main__":
    main()
