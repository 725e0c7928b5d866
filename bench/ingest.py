"""Ingest throughput: metrics events a second into a real server, from one logging client
and from 8 at once (each its own process and run), against the server's own workers (a
small run at full speed, whose every step is one metrics event).

    .venv/bin/python bench/ingest.py [--steps 50000] [--clients 8]

Each client logs `steps` per-step losses from a plain loop (gradscope.server.client.Run,
batches of 1,000) and finishes; its figure is events over the time from its first log to
its finish's answer (everything committed). The server's figure is a run's steps over its
started..finished time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Server, mnist_dir


def log_steps(url: str, steps: int, out: mp.Queue) -> None:
    """One client: `steps` losses from a plain loop, then finish; (events, seconds)."""
    from gradscope.server.client import Run

    start = time.perf_counter()
    with Run(name="bench client", url=url) as run:
        for step in range(1, steps + 1):
            run.log({"train_loss": 1.0 / step}, step=step)
    out.put((steps, time.perf_counter() - start))


def clients(url: str, n: int, steps: int) -> dict[str, float]:
    """n client processes at once: their events a second together, and each one's."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=log_steps, args=(url, steps, out)) for _ in range(n)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    total = sum(e for e, _ in results)
    return {
        "clients": n,
        "events": total,
        "wall_s": round(wall, 2),
        "events_per_s": round(total / wall),
        "per_client_events_per_s": round(min(e / s for e, s in results)),
    }


def server_run(server: Server, steps: int) -> dict[str, float]:
    """The server's own worker: a small run at full speed, one metrics event a step."""
    run = server.create("xor", {"steps": steps, "pace": None, "batch_size": 100})
    done = server.wait_final(run["id"])
    seconds = done["finished_at"] - done["started_at"]
    return {
        "steps": done["step"],
        "seconds": round(seconds, 2),
        "events_per_s": round(steps / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000, help="steps each client logs")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with Server(mnist_dir(), env={"GRADSCOPE_MAX_CONCURRENT": "2"}) as server:
        figures = {
            "one_client": clients(server.url, 1, args.steps),
            f"{args.clients}_clients": clients(server.url, args.clients, args.steps),
            "server_worker": server_run(server, args.steps),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
