"""Recording overhead: the worker's TrainingLoop writing to a real store vs the bare engine loop.

For each preset (config = server.runs.config.resolve_config(preset, {"steps": N}, ...)), three
variants train the same run from the same start, each in its own subprocess, alternated
over --rounds rounds (bench/_harness.py):

  bare      a loop of trainer.train_step() for N steps
            (trainer = gradscope.server.runs.trainers.build_trainer(config, mnist_dir))
  evaluated the same loop plus trainer.evaluate() (one test pass) at each epoch end and
            at the end: the bare loop of anyone who wants test figures every epoch
  recorded  server.runs.loop.TrainingLoop(store, run_id, trainer, config).run(): per-step
            metrics events, the adaptive every-k snapshots, epoch-end test metrics,
            checkpoints, and a commit every 50 ms into a real gradscope.server.store.Store in a
            temporary dir (store.create_run(..., source="cli", total_steps=N) first)

The clock covers only the training loop: data loading, trainer construction, store
creation are outside it; for `recorded` it includes the start events (graph, dataset),
the final snapshot, the final checkpoint and the state changes, which recording adds.
The figures are the medians of same-round time ratios: evaluated/recorded is what recording
and streaming cost (the goal: >= 0.952, i.e. < 5%; the issue puts every-epoch test metrics
outside the adaptive budget), bare/recorded everything the loop adds to bare steps. BLAS
threads are left as the server's workers leave them (every core) unless --threads says so.

    .venv/bin/python bench/recording_overhead.py [--rounds 5] [--mnist-steps 1500]
        [--moons-steps 20000] [--napkin-steps 300] [--presets moons,...] [--threads N]
    .venv/bin/python bench/recording_overhead.py --breakdown moons  (where `recorded` spends)
    .venv/bin/python bench/recording_overhead.py --profile moons    (cProfile of `recorded`)
"""

from __future__ import annotations

import argparse
import os
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

GOAL_RATIO = 1 / 1.05
VARIANTS = ("bare", "evaluated", "recorded")


def build(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """(config, trainer) for the child's preset, from the same start on both sides."""
    from gradscope.engine.perf import tune_malloc
    from gradscope.server.runs.config import resolve_config
    from gradscope.server.runs.trainers import build_trainer

    tune_malloc()  # as the server's workers and `gradscope train` do
    config = resolve_config(
        cfg["preset"],
        {"steps": cfg["steps"], "pace": None},
        max_parameters=10**9,
        max_steps=10**9,
    )
    return config, build_trainer(config, Path(cfg["mnist_dir"]))


def recorded_loop(cfg: dict[str, Any], config: Any, trainer: Any, data_dir: Path) -> Any:
    """A TrainingLoop over a fresh run in a real store under data_dir (not yet run)."""
    from gradscope.server.runs.loop import TrainingLoop
    from gradscope.server.store import Store

    store = Store(data_dir)
    run = store.create_run(
        config.model_dump(mode="json"),
        preset=cfg["preset"],
        name=None,
        source="cli",
        total_steps=cfg["steps"],
    )
    return TrainingLoop(store, run.id, trainer, config)


def child(name: str, cfg: dict[str, Any]) -> None:
    variant = name.split(":")[0]
    config, trainer = build(cfg)
    n = cfg["steps"]
    result: dict[str, Any] = {}
    if variant in ("bare", "evaluated"):
        evaluate = variant == "evaluated"
        t0, c0 = time.perf_counter(), time.process_time()
        while trainer.step < n:
            trainer.train_step()
            if evaluate and trainer.epoch_finished():
                trainer.evaluate()  # the epoch's test pass, which any loop with test metrics does
        if evaluate:
            trainer.evaluate()  # the recorded loop's last test figures
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        with tempfile.TemporaryDirectory(prefix="gradscope-bench-") as tmp:
            loop = recorded_loop(cfg, config, trainer, Path(tmp) / "data")
            t0, c0 = time.perf_counter(), time.process_time()
            state = loop.run()
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            if state != "finished":
                raise RuntimeError(f"the run ended {state}")
            events = loop.store.events(loop.run_id)
            loop.store.close()
        kinds: dict[str, int] = {}
        for e in events:
            kinds[e["type"]] = kinds.get(e["type"], 0) + 1
        result.update(events=len(events), kinds=kinds, record_every=loop.record_every)
    result.update(seconds=seconds, cpu=cpu, us_per_step=seconds / n * 1e6)
    result["brief"] = f"{result['us_per_step']:8.1f} us/step"
    H.emit(result)


def breakdown(cfg: dict[str, Any]) -> None:
    """Where the recorded loop's time goes: wall time inside each hook, in-process.

    Each hook is wrapped with a perf_counter pair (about 0.2 us a call); what is left is
    the loop's own per-step work (building the metrics event, clocks, checks).
    """
    config, trainer = build(cfg)
    spent: dict[str, float] = {}
    calls: dict[str, int] = {}

    def wrap(obj: Any, name: str, label: str) -> None:
        inner = getattr(obj, name)

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0
                calls[label] = calls.get(label, 0) + 1

        setattr(obj, name, timed)

    with tempfile.TemporaryDirectory(prefix="gradscope-bench-") as tmp:
        loop = recorded_loop(cfg, config, trainer, Path(tmp) / "data")
        hooks = [
            (trainer, "train_step", "trainer.train_step (the bare step)"),
            (loop.store, "append_events", "store.append_events (JSON + SQLite commit)"),
            (trainer, "epoch_events", "trainer.epoch_events (test eval, confusion)"),
            (trainer, "record_events", "trainer.record_events (every-k snapshot)"),
            (trainer, "save_checkpoint", "trainer.save_checkpoint"),
            (trainer, "start_events", "trainer.start_events (graph, dataset)"),
            (loop.store, "set_state", "store.set_state"),
        ]
        for obj, name, label in hooks:
            wrap(obj, name, label)
        t0 = time.perf_counter()
        loop.run()
        total = time.perf_counter() - t0
        loop.store.close()
    rest = total - sum(spent.values())
    rows = [
        [label, calls[label], f"{sec:.3f}", f"{sec / total:.1%}"]
        for label, sec in sorted(spent.items(), key=lambda kv: -kv[1])
    ]
    rows.append(["the loop itself (the rest)", "", f"{rest:.3f}", f"{rest / total:.1%}"])
    rows.append(["total", "", f"{total:.3f}", "100%"])
    print(f"# recorded loop of {cfg['preset']}, {cfg['steps']} steps, final k {loop.record_every}")
    print(H.table(["where", "calls", "seconds", "share"], rows))
    outside = 1 - spent["trainer.train_step (the bare step)"] / total
    print(f"outside train_step: {outside:.1%} of the loop")


def profile(cfg: dict[str, Any], top: int) -> None:
    """cProfile the recorded variant in this process (it inflates Python-heavy code)."""
    import cProfile
    import pstats

    config, trainer = build(cfg)
    with tempfile.TemporaryDirectory(prefix="gradscope-bench-") as tmp:
        loop = recorded_loop(cfg, config, trainer, Path(tmp) / "data")
        prof = cProfile.Profile()
        prof.enable()
        loop.run()
        prof.disable()
        loop.store.close()
    stats = pstats.Stats(prof, stream=sys.stdout)
    print(f"# cProfile of the recorded loop, {cfg['preset']}, {cfg['steps']} steps")
    stats.sort_stats("cumulative").print_stats(top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--mnist-steps", type=int, default=1500, help="mnist-mlp steps (1500)")
    ap.add_argument("--moons-steps", type=int, default=20_000, help="moons steps (20000)")
    ap.add_argument("--napkin-steps", type=int, default=300, help="napkin-average steps (300)")
    ap.add_argument(
        "--presets",
        default="mnist-mlp,moons,napkin-average",
        help="comma-separated presets (default mnist-mlp,moons,napkin-average)",
    )
    ap.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="BLAS threads (every core)"
    )
    ap.add_argument("--mnist-dir", default=None, help="MNIST folder (default ../shared/mnist)")
    ap.add_argument(
        "--breakdown",
        metavar="PRESET",
        help="only time the recorded loop's parts for PRESET, in-process",
    )
    ap.add_argument("--profile", metavar="PRESET", help="only cProfile the recorded loop of PRESET")
    ap.add_argument("--quick", action="store_true", help="2 rounds, a tenth of the steps")
    args = H.parse_or_run_child(ap, child)
    if args is None:
        return 0
    steps = {
        "mnist-mlp": args.mnist_steps,
        "moons": args.moons_steps,
        "napkin-average": args.napkin_steps,
    }
    if args.quick:
        args.rounds = 2
        steps = {k: max(10, v // 10) for k, v in steps.items()}
    mnist = S.mnist_dir(args.mnist_dir)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    if args.breakdown or args.profile:
        name = args.breakdown or args.profile
        cfg = {"preset": name, "steps": steps.get(name, 1000), "mnist_dir": mnist}
        if args.breakdown:
            breakdown(cfg)
        else:
            profile(cfg, 30)
        return 0
    jobs: dict[str, list[str]] = {}
    for p in presets:
        cfg = {"preset": p, "steps": steps.get(p, 1000), "mnist_dir": mnist}
        for v in VARIANTS:
            jobs.update(H.child_jobs(__file__, [f"{v}:{p}"], cfg))
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {H.versions()}; BLAS threads {args.threads}")
    t_start = time.monotonic()
    results = H.alternate(jobs, args.rounds, args.threads)
    rows = []
    lines = []
    for p in presets:
        bare, ev, rec = (results[f"{v}:{p}"] for v in VARIANTS)
        ratios = [b["seconds"] / r["seconds"] for b, r in zip(bare, rec)]
        eratios = [e["seconds"] / r["seconds"] for e, r in zip(ev, rec)]
        med, emed = statistics.median(ratios), statistics.median(eratios)
        best = min(e["seconds"] for e in ev) / min(r["seconds"] for r in rec)
        last = rec[-1]
        rows.append(
            [
                p,
                steps.get(p, 1000),
                f"{H.median_of(bare, 'us_per_step'):.1f}",
                f"{H.median_of(ev, 'us_per_step'):.1f}",
                f"{H.median_of(rec, 'us_per_step'):.1f}",
                f"{med:.3f} ({(1 / med - 1) * 100:+.1f}%)",
                f"{emed:.3f} ({(1 / emed - 1) * 100:+.1f}%)",
                f"{best:.3f}",
                last["events"],
                last["record_every"],
                "yes" if emed >= GOAL_RATIO else "NO",
            ]
        )
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(last["kinds"].items()))
        cpu = [e["cpu"] / r["cpu"] for e, r in zip(ev, rec)]
        lines.append(
            f"{p}: evaluated/recorded per round {' '.join(f'{x:.3f}' for x in eratios)}\n"
            f"  bare/recorded per round {' '.join(f'{x:.3f}' for x in ratios)}\n"
            f"  evaluated/recorded in process CPU time {' '.join(f'{x:.3f}' for x in cpu)} "
            f"(median {statistics.median(cpu):.3f})\n"
            f"  events of the last recorded run: {kinds}"
        )
    headers = [
        "preset",
        "steps",
        "bare us/step",
        "evaluated",
        "recorded",
        "bare/recorded",
        "evaluated/recorded",
        "best/best",
        "events",
        "final k",
        "< 5%",
    ]
    print(H.table(headers, rows))
    print(
        "(us/step: medians over the rounds; ratios: medians of same-round ratios, "
        "evaluated/recorded the goal;\n best/best: fastest evaluated round / fastest recorded "
        "round, which a burst of host noise in a few rounds does not move)"
    )
    print("\n".join(lines))
    print(f"# {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
