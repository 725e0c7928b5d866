"""Recording overhead, paired in one process: the recorded loop and the bare loop take turns
every 5 ms, so a burst of host noise slows both alike.

`bench/recording_overhead.py` runs each variant in its own process; on these shared
machines whole processes run 1.5-2x slow at random (process CPU time too), and its ratios
swing 0.65-1.45 from round to round. Here two trainers of the same config train side by
side in one process:

  recorded  server.runs.loop.TrainingLoop(...).run() into a real Store in a temporary dir,
            exactly as a worker runs it (per-step metrics, adaptive every-k snapshots,
            epoch-end test metrics, checkpoints, a commit every 50 ms)
  evaluated trainer.train_step() plus trainer.evaluate() at each epoch end and at the end
            (the bare loop of anyone who wants test figures every epoch; the issue puts
            every-epoch test metrics outside the adaptive budget)

The worker polls its command pipe every 5 ms (`TrainingLoop._commands`); here that hook
runs as many evaluated steps as the recorded loop made since the last poll, timed apart.
The recorded loop does not see that time: its step clock is read after the hook, and its
flush and checkpoint timers are moved on by it, so it commits and checkpoints as often per
recorded step as a worker does. Recorded time = the loop's wall time - the evaluated
steps' time. The figure, evaluated/recorded (>= 0.952 means < 5%), is the median over
--rounds rounds, each with fresh trainers.

    .venv/bin/python bench/recording_paired.py [--rounds 5] [--presets moons,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _harness as H
import _server as S
from recording_overhead import GOAL_RATIO, build, recorded_loop

STEPS = {"mnist-mlp": 1500, "moons": 20_000, "napkin-average": 300}


def one_round(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train the recorded and the evaluated side in turns; their seconds and counts."""
    config, rec = build(cfg)
    _, ev = build(cfg)
    n = cfg["steps"]
    spent = {"evaluated": 0.0, "inside": 0.0}
    done = [0]

    with tempfile.TemporaryDirectory(prefix="gradscope-bench-") as tmp:
        loop = recorded_loop(cfg, config, rec, Path(tmp) / "data")

        def catch_up() -> float:
            """Run the evaluated side up to the recorded side's step count; its seconds."""
            t0 = time.perf_counter()
            for _ in range(rec.step - done[0]):
                ev.train_step()
                if ev.epoch_finished():
                    ev.evaluate()
            done[0] = rec.step
            dt = time.perf_counter() - t0
            spent["evaluated"] += dt
            return dt

        def turn() -> None:
            dt = catch_up()
            spent["inside"] += dt
            loop.last_flush += dt  # the recorded loop's timers do not count the other side
            loop.last_checkpoint += dt

        loop.control = object()  # a worker always has its command pipe: poll every 5 ms
        loop._commands = turn  # type: ignore[method-assign]
        t0 = time.perf_counter()
        state = loop.run()
        total = time.perf_counter() - t0
        if state != "finished":
            raise RuntimeError(f"the recorded run ended {state}")
        catch_up()  # the last few steps, outside the loop
        t1 = time.perf_counter()
        ev.evaluate()  # the recorded loop's last test figures
        spent["evaluated"] += time.perf_counter() - t1
        events = len(loop.store.events(loop.run_id))
        loop.store.close()
    if (rec.step, ev.step) != (n, n):
        raise RuntimeError(f"steps: recorded {rec.step}, evaluated {ev.step}, wanted {n}")
    recorded = total - spent["inside"]
    return {
        "recorded": recorded,
        "evaluated": spent["evaluated"],
        "ratio": spent["evaluated"] / recorded,
        "events": events,
        "k": loop.record_every,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds per preset (default 5)")
    ap.add_argument("--presets", default=",".join(STEPS), help="comma-separated presets")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default per preset)")
    ap.add_argument("--mnist-dir", default=None, help="MNIST folder (default ../shared/mnist)")
    args = ap.parse_args()
    mnist = S.mnist_dir(args.mnist_dir)
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {H.versions()}")
    rows = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        steps = args.steps or STEPS.get(preset, 1000)
        cfg = {"preset": preset, "steps": steps, "mnist_dir": mnist}
        res = [one_round(cfg) for _ in range(args.rounds)]
        ratios = [r["ratio"] for r in res]
        med = statistics.median(ratios)
        print(f"{preset}: evaluated/recorded per round " + " ".join(f"{x:.3f}" for x in ratios))
        rows.append(
            [
                preset,
                steps,
                f"{statistics.median(r['evaluated'] for r in res) / steps * 1e6:.1f}",
                f"{statistics.median(r['recorded'] for r in res) / steps * 1e6:.1f}",
                f"{med:.3f} ({(1 / med - 1) * 100:+.1f}%)",
                f"{min(ratios):.3f}..{max(ratios):.3f}",
                res[-1]["events"],
                res[-1]["k"],
                "yes" if med >= GOAL_RATIO else "NO",
            ]
        )
    headers = ["preset", "steps", "evaluated us/step", "recorded us/step"]
    headers += ["evaluated/recorded", "range", "events", "final k", "< 5%"]
    print(H.table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
