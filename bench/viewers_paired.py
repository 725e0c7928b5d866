"""MNIST MLP throughput with and without 50 viewers, paired within one run.

`bench/viewers.py` compares whole runs of ~2 s with and without viewers; on these shared
machines whole seconds run 1.5-2x slow at random, so its per-round ratios swing 0.5-2.0.
Here one long mnist-mlp run trains under a real `gradscope serve` (subprocess, loopback,
temporary data dir, default settings) while this script alternates phases of --phase
seconds (3): no viewer, then --viewers websocket viewers of the run (the same clients as
`bench/viewers.py`: permessage-deflate asked for, every message read as bytes), then none
again, and so on. A viewer phase connects its viewers with `?since=` the run's last seq (a
browser that keeps its tab open does not replay the history again), and the first
--settle seconds (1) of each phase are left out, so the 50 handshakes do not count.

Throughput in a phase = steps / seconds between its first and last per-step `metrics`
event (their `t`, from the run's export). Each viewer phase is compared with the mean of
the phases without viewers on either side of it; the result is the median of those ratios
(goal: >= 0.95, i.e. less than 5% slower with viewers).

    .venv/bin/python bench/viewers_paired.py [--pairs 8] [--phase 3] [--viewers 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H
import _server as S
from viewers import GOAL_RATIO, Viewers


def rate(steps: list[tuple[int, float]], start: float, end: float) -> float | None:
    """Steps per second of the per-step events stamped within [start, end]."""
    inside = [(s, t) for s, t in steps if start <= t <= end]
    if len(inside) < 10:
        return None
    (s0, t0), (s1, t1) = inside[0], inside[-1]
    return (s1 - s0) / (t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=8, help="viewer phases (default 8)")
    ap.add_argument("--phase", type=float, default=3.0, help="seconds per phase (3)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds left out (1)")
    ap.add_argument("--viewers", type=int, default=50, help="viewers (default 50)")
    ap.add_argument("--mnist-dir", default=None, help="MNIST folder (default ../shared/mnist)")
    args = ap.parse_args()
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {H.versions()}; mnist-mlp; {args.viewers} viewers; phases of {args.phase:g} s")
    with S.Server(S.mnist_dir(args.mnist_dir)) as server:
        run = server.create("mnist-mlp", {"steps": 1_000_000})
        rid = run["id"]
        while server.run(rid)["step"] < 300:  # past start-up and the first records
            time.sleep(0.1)
        windows: list[tuple[bool, float, float]] = []
        cpu: dict[bool, float] = {False: 0.0, True: 0.0}
        received = 0
        for i in range(2 * args.pairs + 1):
            with_viewers = i % 2 == 1
            c0 = server.cpu()[0] + time.process_time()
            start = time.time()
            if with_viewers:
                since = server.run(rid)["last_seq"]
                viewers = Viewers(server.ws_url, rid, args.viewers, deflate=True)
                viewers.url += f"?since={since}"
                with viewers:
                    time.sleep(args.phase)
                errors = [v.error for v in viewers.viewers if v.error]
                if errors:
                    raise RuntimeError(f"{len(errors)} viewer(s) failed: {errors[0]}")
                received += sum(v.messages > 0 for v in viewers.viewers)
            else:
                time.sleep(args.phase)
            end = time.time()
            cpu[with_viewers] += server.cpu()[0] + time.process_time() - c0
            windows.append((with_viewers, start + args.settle, end))
        server.http.post(f"{server.url}/api/runs/{rid}/stop").raise_for_status()
        while server.run(rid)["state"] not in S.FINAL:
            time.sleep(0.1)
        events = server.events(rid)
    steps = [
        (e["step"], e["t"]) for e in events if e["type"] == "metrics" and "train_loss" in e["data"]
    ]
    rates = [rate(steps, a, b) for _, a, b in windows]
    ratios = []
    for i in range(1, len(windows) - 1, 2):
        before, during, after = rates[i - 1], rates[i], rates[i + 1]
        if before and during and after:
            ratios.append(during / ((before + after) / 2))
    if not ratios:
        raise RuntimeError("no phase had enough steps to measure")
    alone = [r for (v, _, _), r in zip(windows, rates) if not v and r]
    watched = [r for (v, _, _), r in zip(windows, rates) if v and r]
    med = statistics.median(ratios)
    print(f"steps/s without viewers, per phase: {' '.join(f'{r:.0f}' for r in alone)}")
    print(f"steps/s with viewers, per phase: {' '.join(f'{r:.0f}' for r in watched)}")
    print(
        f"CPU seconds of the server process + this one: {cpu[False]:.2f} in the phases "
        f"without viewers, {cpu[True]:.2f} with ({received} viewer connections got messages)"
    )
    print(f"with / without, per viewer phase: {' '.join(f'{x:.3f}' for x in ratios)}")
    verdict = "met" if med >= GOAL_RATIO else "MISSED"
    print(
        f"median ratio {med:.3f} ({(1 / med - 1) * 100:+.1f}% slower; "
        f"range {min(ratios):.3f}..{max(ratios):.3f}); goal >= {GOAL_RATIO}: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
