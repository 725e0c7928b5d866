"""MNIST MLP training throughput with 0 and with 50 websocket viewers of the same run.

A real `gradscope serve` runs in a subprocess (its own temporary data dir, default
settings). Each round trains the mnist-mlp preset for --steps steps once with no viewer
and once with --viewers viewers, the order alternating between rounds. A viewer is a
websocket client of /ws/runs/{id} (all of them in one asyncio loop in a thread of this
process, asking for permessage-deflate as browsers do); it reads every message (as bytes,
undecoded) and keeps the last seq it saw, so the script can check that each viewer got
every event.

Throughput comes from the run's own events (GET /api/runs/{id}/export?format=json):

    steps/s = (last step - first step) / (t of the last step's metrics event - t of the first)

so the worker's start-up and data loading do not count. The figure is the same-round
ratio with/without viewers; its median over the rounds is the result (goal: >= 0.95,
i.e. less than 5% slower with viewers).

    .venv/bin/python bench/viewers.py [--rounds 7] [--steps 1500] [--viewers 50]
        [--no-deflate] [--viewers-nice 19] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H
import _server as S

GOAL_RATIO = 0.95


@dataclass
class Viewer:
    messages: int = 0
    bytes: int = 0
    last_seq: int = 0
    error: str | None = None


def _last_seq(data: bytes) -> int:
    """The last event's seq in an events message, without decoding or parsing all of it."""
    i = data.rfind(b'{"seq":')
    if i < 0:
        return 0
    j = i + len(b'{"seq":')
    k = data.index(b",", j)
    return int(data[j:k])


async def _view(url: str, v: Viewer, stop: asyncio.Event, deflate: bool) -> None:
    from websockets.asyncio.client import connect

    try:
        async with connect(
            url, max_size=None, open_timeout=30, compression="deflate" if deflate else None
        ) as ws:
            await ws.recv()  # hello
            while not stop.is_set():
                try:
                    # Raw bytes: these viewers share the training's 2 cores, and decoding
                    # every message would bill the bench's own clients to the server.
                    text = await asyncio.wait_for(ws.recv(decode=False), 0.5)
                except TimeoutError:
                    continue
                v.messages += 1
                v.bytes += len(text)
                v.last_seq = max(v.last_seq, _last_seq(text))
    except Exception as e:
        v.error = f"{type(e).__name__}: {e}"


class Viewers:
    """n websocket viewers of one run, in one asyncio loop on a background thread."""

    def __init__(self, ws_url: str, run_id: str, n: int, deflate: bool) -> None:
        self.url = f"{ws_url}/ws/runs/{run_id}"
        self.viewers = [Viewer() for _ in range(n)]
        self.deflate = deflate
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.started = threading.Event()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._all())

    async def _all(self) -> None:
        self.stop_event = asyncio.Event()
        self.started.set()
        await asyncio.gather(
            *(_view(self.url, v, self.stop_event, self.deflate) for v in self.viewers)
        )

    def __enter__(self) -> Viewers:
        if self.viewers:
            self.thread.start()
            self.started.wait()
        return self

    def wait_for(self, last_seq: int, timeout: float = 30.0) -> None:
        """Until every viewer has seen last_seq (or failed, or the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(v.last_seq >= last_seq or v.error for v in self.viewers):
                return
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.viewers:
            assert self.stop_event is not None
            self.loop.call_soon_threadsafe(self.stop_event.set)
            self.thread.join(30)
            self.loop.close()


def throughput(events: list[dict[str, Any]]) -> tuple[float, int]:
    """(steps/s between the first and the last per-step metrics event, steps seen)."""
    steps = [
        (e["step"], e["t"]) for e in events if e["type"] == "metrics" and "train_loss" in e["data"]
    ]
    (s0, t0), (s1, t1) = steps[0], steps[-1]
    return (s1 - s0) / (t1 - t0), len(steps)


def one_run(
    server: S.Server, args: argparse.Namespace, n_viewers: int, deflate: bool
) -> dict[str, Any]:
    """Train one run with n_viewers viewers; its throughput and the CPU seconds it cost
    the server process (not its workers) and this process (the viewers)."""
    overrides: dict[str, Any] = {"steps": args.steps}
    if args.mnist_train_limit:
        overrides["dataset"] = {"mnist_train_limit": args.mnist_train_limit}
    cpu0, here0, t0 = server.cpu()[0], time.process_time(), time.monotonic()
    run = server.create("mnist-mlp", overrides)
    with Viewers(server.ws_url, run["id"], n_viewers, deflate) as viewers:
        final = server.wait_final(run["id"])
        viewers.wait_for(final["last_seq"])
    cpu1, here1, t1 = server.cpu()[0], time.process_time(), time.monotonic()
    errors = [v.error for v in viewers.viewers if v.error]
    if errors:
        raise RuntimeError(f"{len(errors)} viewer(s) failed: {errors[0]}")
    complete = sum(v.last_seq >= final["last_seq"] for v in viewers.viewers)
    rate, n_steps = throughput(server.events(run["id"]))
    server.delete(run["id"])
    return {
        "rate": rate,
        "steps": n_steps,
        "complete": complete,
        "messages": sum(v.messages for v in viewers.viewers),
        "bytes": sum(v.bytes for v in viewers.viewers),
        "server_cpu": cpu1 - cpu0,
        "viewers_cpu": here1 - here0,
        "wall": t1 - t0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--steps", type=int, default=1500, help="mnist-mlp steps per run (1500)")
    ap.add_argument("--viewers", type=int, default=50, help="viewers (default 50)")
    ap.add_argument("--mnist-train-limit", type=int, default=None, help="mnist train images")
    ap.add_argument(
        "--no-deflate", action="store_true", help="viewers do not ask for permessage-deflate"
    )
    ap.add_argument(
        "--diagnostic",
        action="store_true",
        help="add a third variant: the viewers without permessage-deflate",
    )
    ap.add_argument(
        "--worker-blas-threads",
        type=int,
        default=None,
        help="set OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) for the server and its workers "
        "(default: unset, as in production: OpenBLAS takes every core)",
    )
    ap.add_argument(
        "--profile", metavar="FILE", help="run the server under cProfile, stats to FILE"
    )
    ap.add_argument(
        "--viewers-nice",
        type=int,
        default=0,
        help="run this process (the viewers) at this niceness once the server is up, so "
        "that the viewers stand for browsers on other machines and the figure is what the "
        "server pays (default 0: they compete with training for this machine's cores)",
    )
    ap.add_argument("--mnist-dir", default=None, help="MNIST folder (default ../shared/mnist)")
    args = ap.parse_args()
    n = args.viewers
    # (label, viewers, ask for permessage-deflate); the first is the reference.
    variants = [("0 viewers", 0, True), (f"{n} viewers", n, not args.no_deflate)]
    if args.diagnostic and not args.no_deflate:
        variants.append((f"{n} viewers, no deflate", n, False))
    labels = [v[0] for v in variants]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    ratios: dict[str, list[float]] = {label: [] for label in labels[1:]}
    env = {}
    if args.worker_blas_threads:
        env = {
            v: str(args.worker_blas_threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
        }
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"# {H.versions()}; mnist-mlp, {args.steps} steps per run; worker BLAS threads: "
        f"{args.worker_blas_threads or 'default'}"
    )
    t_start = time.monotonic()
    profile = Path(args.profile).resolve() if args.profile else None
    with S.Server(S.mnist_dir(args.mnist_dir), env=env, profile=profile) as server:
        if args.viewers_nice:
            os.nice(args.viewers_nice)  # the server and its workers keep theirs
            print(f"viewers at niceness {os.nice(0)}; the server and its workers at 0")
        for r in range(args.rounds):
            k = r % len(variants)
            got: dict[str, dict[str, Any]] = {}
            for label, viewers, deflate in variants[k:] + variants[:k]:
                got[label] = res = one_run(server, args, viewers, deflate)
                runs[label].append(res)
                extra = ""
                if viewers:
                    mb = res["bytes"] / 1e6
                    extra = (
                        f"  {res['complete']}/{viewers} viewers got every event, "
                        f"{res['messages']} messages, {mb:.1f} MB (decompressed) in all"
                    )
                print(
                    f"  round {r + 1}/{args.rounds}  {label:<24} {res['rate']:7.1f} steps/s{extra}",
                    file=sys.stderr,
                    flush=True,
                )
            for label in labels[1:]:
                ratios[label].append(got[label]["rate"] / got[labels[0]]["rate"])

    def med(label: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[label])

    rows = []
    for label in labels:
        share = statistics.median(
            (x["server_cpu"] + x["viewers_cpu"]) / x["wall"] for x in runs[label]
        )
        rows.append(
            [
                label,
                f"{med(label, 'rate'):.1f}",
                " ".join(f"{x['rate']:.0f}" for x in runs[label]),
                f"{med(label, 'server_cpu'):.2f}",
                f"{med(label, 'viewers_cpu'):.2f}",
                f"{share:.0%}",
            ]
        )
    headers = [
        "variant",
        "median steps/s",
        "per round",
        "server cpu s",
        "viewers cpu s",
        "of a core",
    ]
    print(H.table(headers, rows))
    print(
        "(cpu: CPU seconds per run of the server process itself, not its worker, and of "
        "this process, which hosts the viewers; 'of a core': both over the run's wall time)"
    )
    for label in labels[1:]:
        m = statistics.median(ratios[label])
        best = max(x["rate"] for x in runs[label]) / max(x["rate"] for x in runs[labels[0]])
        verdict = "met" if m >= GOAL_RATIO else "MISSED"
        print(
            f"\n{label} / 0 viewers, per round: {' '.join(f'{x:.3f}' for x in ratios[label])}"
            f"\nmedian ratio {m:.3f} ({(1 - m) * 100:+.1f}% slower; best round vs best round "
            f"{best:.3f}); goal >= {GOAL_RATIO}: {verdict}"
        )
    print(f"# {time.monotonic() - t_start:.0f} s")
    if profile is not None:
        import pstats

        print(f"\n# server profile ({profile}), top functions by own time:")
        pstats.Stats(str(profile), stream=sys.stdout).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
