"""Step -> websocket latency: how old a step's `metrics` event is when a client receives it.

A real `gradscope serve` runs in a subprocess (its own temporary data dir, the default
settings: the worker commits every 50 ms, the hub polls every 20 ms). For each case the
script starts a run over REST, connects websocket clients to /ws/runs/{id} at once, and
for every per-step `metrics` event (the ones with train_loss) takes

    latency = the client's time.time() when the message arrived - event["t"]

(`t` is the worker's wall time when it made the event; one machine, one clock). Events
already in the store when a client's hello arrived are replays, not live, and are left
out. The cases run in turn and their order rotates each round; the figures pool every
round, and the per-round p99s are printed too.

Where the time goes, per received message: "delivery" is the age of the message's newest
step event (commit -> hub poll -> send -> receive; the newest event was made just before
its commit), and "buffered" is the rest of each event's latency (waiting in the worker's
buffer for the next 50 ms commit).

A last, diagnostic case repeats the many-clients case with clients that do not ask for
permessage-deflate (browsers do ask, so the server compresses every batch once per
client); --no-diagnostic skips it. --profile FILE runs the server under cProfile.

    .venv/bin/python bench/stream_latency.py [--rounds 3] [--moons-steps 10000]
        [--mnist-steps 2000] [--mnist-train-limit N] [--clients 20] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H
import _server as S

GOAL_P99_MS = 100.0


def cases(args: argparse.Namespace) -> dict[str, tuple[str, dict[str, Any], int, bool]]:
    """name -> (preset, config overrides, websocket clients, ask for permessage-deflate)."""
    mnist: dict[str, Any] = {"steps": args.mnist_steps}
    if args.mnist_train_limit:
        mnist["dataset"] = {"mnist_train_limit": args.mnist_train_limit}
    moons = {"steps": args.moons_steps}
    n = args.clients
    out = {
        "moons": ("moons", moons, 1, True),
        "mnist-mlp": ("mnist-mlp", mnist, 1, True),
        "napkin-average": ("napkin-average", {}, 1, True),
        f"moons x{n} clients": ("moons", moons, n, True),
    }
    if args.mnist_many:
        out[f"mnist-mlp x{n} clients"] = ("mnist-mlp", mnist, n, True)
    if not args.no_diagnostic:
        out[f"moons x{n}, no deflate"] = ("moons", moons, n, False)
    return out


def measure(
    server: S.Server, preset: str, overrides: dict, clients: int, deflate: bool
) -> dict[str, Any]:
    """Run one case; the live step events' latencies (s) and per-message delivery ages."""
    run = server.create(preset, overrides)
    streams = S.read_streams(server.ws_url, run["id"], clients, deflate=deflate)
    server.wait_final(run["id"])
    latencies: list[float] = []
    delivery: list[float] = []
    buffered: list[float] = []
    per_client_p99: list[float] = []
    messages = replayed = 0
    for stream in streams:
        if stream.error:
            raise RuntimeError(f"a websocket client failed: {stream.error}")
        live_after = stream.hello["last_seq"]
        mine: list[float] = []
        for arrived, text in stream.messages:
            msg = json.loads(text)
            steps = [
                e
                for e in msg["events"]
                if e["type"] == "metrics" and "train_loss" in e["data"] and e["seq"] > live_after
            ]
            replayed += sum(1 for e in msg["events"] if e["seq"] <= live_after)
            if not steps:
                continue
            messages += 1
            newest = arrived - max(e["t"] for e in steps)
            delivery.append(newest)
            for e in steps:
                lat = arrived - e["t"]
                mine.append(lat)
                buffered.append(lat - newest)
        latencies.extend(mine)
        per_client_p99.append(S.distribution(mine)["p99"])
    server.delete(run["id"])
    return {
        "latencies": latencies,
        "delivery": delivery,
        "buffered": buffered,
        "messages": messages,
        "replayed": replayed,
        "worst_client_p99": max(per_client_p99),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all cases (default 3)")
    ap.add_argument("--moons-steps", type=int, default=10_000, help="moons steps (default 10000)")
    ap.add_argument("--mnist-steps", type=int, default=2000, help="mnist-mlp steps (default 2000)")
    ap.add_argument("--mnist-train-limit", type=int, default=None, help="mnist train images")
    ap.add_argument("--clients", type=int, default=20, help="clients of the many-clients case")
    ap.add_argument(
        "--mnist-many", action="store_true", help="also run mnist-mlp with --clients clients"
    )
    ap.add_argument(
        "--no-diagnostic",
        action="store_true",
        help="skip the diagnostic case: the many clients without permessage-deflate",
    )
    ap.add_argument(
        "--profile", metavar="FILE", help="run the server under cProfile, stats to FILE"
    )
    ap.add_argument("--mnist-dir", default=None, help="MNIST folder (default ../shared/mnist)")
    args = ap.parse_args()
    table = cases(args)
    names = list(table)
    pooled: dict[str, dict[str, list[float]]] = {
        n: {"latencies": [], "delivery": [], "buffered": []} for n in names
    }
    extra: dict[str, dict[str, list[float]]] = {
        n: {"p99": [], "messages": [], "replayed": [], "worst": []} for n in names
    }
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {H.versions()}; server defaults: commit every 50 ms, hub poll every 20 ms")
    t_start = time.monotonic()
    profile = Path(args.profile).resolve() if args.profile else None
    with S.Server(S.mnist_dir(args.mnist_dir), profile=profile) as server:
        for r in range(args.rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                res = measure(server, *table[name])
                for key in ("latencies", "delivery", "buffered"):
                    pooled[name][key].extend(res[key])
                d = S.distribution(res["latencies"])
                extra[name]["p99"].append(d["p99"])
                extra[name]["messages"].append(res["messages"])
                extra[name]["replayed"].append(res["replayed"])
                extra[name]["worst"].append(res["worst_client_p99"])
                print(
                    f"  round {r + 1}/{args.rounds}  {name:<26} n={d['count']:>6}  "
                    f"p50 {d['p50'] * 1e3:5.1f} ms  p99 {d['p99'] * 1e3:5.1f} ms  "
                    f"max {d['max'] * 1e3:6.1f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    rows = []
    for name in names:
        d = S.distribution(pooled[name]["latencies"])
        dv = S.distribution(pooled[name]["delivery"])
        bf = S.distribution(pooled[name]["buffered"])
        per_msg = d["count"] / max(1, sum(extra[name]["messages"]))
        rows.append(
            [
                name,
                d["count"],
                f"{d['p50'] * 1e3:.1f}",
                f"{d['p90'] * 1e3:.1f}",
                f"{d['p99'] * 1e3:.1f}",
                f"{d['max'] * 1e3:.1f}",
                f"{dv['p50'] * 1e3:.1f}/{dv['p99'] * 1e3:.1f}",
                f"{bf['p50'] * 1e3:.1f}/{bf['p99'] * 1e3:.1f}",
                f"{per_msg:.1f}",
                "yes" if d["p99"] * 1e3 < GOAL_P99_MS else "NO",
            ]
        )
    headers = [
        "case",
        "events",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "delivery p50/p99",
        "buffered p50/p99",
        "ev/msg",
        "p99<100",
    ]
    print(H.table(headers, rows))
    print()
    for name in names:
        p99s = " ".join(f"{v * 1e3:.1f}" for v in extra[name]["p99"])
        worst = max(extra[name]["worst"]) * 1e3
        replayed = sum(extra[name]["replayed"])
        print(
            f"{name}: per-round p99 ms {p99s} (median "
            f"{statistics.median(extra[name]['p99']) * 1e3:.1f}); worst single client's p99 "
            f"{worst:.1f} ms; replayed events left out: {replayed}"
        )
    print(f"# {time.monotonic() - t_start:.0f} s")
    if profile is not None:
        import pstats

        print(f"\n# server profile ({profile}), top functions by own time:")
        pstats.Stats(str(profile), stream=sys.stdout).sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
