"""Per-step time of tiny networks, where per-op overhead rules: our engine vs PyTorch eager.

  (a) MLP 2-16-16-1 tanh (linear output) on 200 random 2-D points, MSE against +-1 labels
      (the XOR of the signs), SGD lr 0.05, full batch of 200 per step.
  (b) the micrograd article's classifier 3-4-4-1, tanh on every layer, on its 4 samples,
      summed squared error (mse_loss reduction="sum" on a (4, 1) output), SGD lr 0.1.
      The scalar engine (engine.examples.TinyClassifier().step()) is timed for reference.

All implementations start from the same weights ((b): the scalar TinyClassifier's), so
their first losses must agree. Each runs in its own subprocess (ours and torch time both
nets per child), with BLAS/OpenMP and torch pinned to --threads threads (default 1: a
fair setting for tiny nets); the parent alternates them for --rounds rounds, medians.

    .venv/bin/python bench/tiny_nets.py [--rounds 5] [--seconds 1] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

NETS = {
    "a": {"sizes": [2, 16, 16, 1], "out_act": "linear", "lr": 0.05, "reduction": "mean"},
    "b": {"sizes": [3, 4, 4, 1], "out_act": "tanh", "lr": 0.1, "reduction": "sum"},
}
TITLES = {
    "a": "(a) MLP 2-16-16-1 tanh, 200 points, MSE, SGD 0.05",
    "b": "(b) micrograd 3-4-4-1 tanh, 4 samples, sum SE, SGD 0.1",
}


def net_setup(key: str, seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """X (n, in), Y (n, 1) float32 and the starting (weight (out, in), bias) per layer."""
    if key == "a":
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, (200, 2)).astype(np.float32)
        y = np.where(x[:, 0] * x[:, 1] > 0, 1.0, -1.0).astype(np.float32).reshape(-1, 1)
        return x, y, H.linear_init(NETS["a"]["sizes"], rng)
    from gradscope.engine.examples import TINY_XS, TINY_YS, TinyClassifier

    x = np.array(TINY_XS, dtype=np.float32)
    y = np.array(TINY_YS, dtype=np.float32).reshape(-1, 1)
    weights = []
    for layer in TinyClassifier().model.layers:
        w = np.array([[p.data for p in n.w] for n in layer.neurons], dtype=np.float32)
        weights.append((w, np.array([n.b.data for n in layer.neurons], dtype=np.float32)))
    return x, y, weights


def ours_step(key: str, seed: int):
    import gradscope.engine.nn.functional as F
    from gradscope import engine
    from gradscope.engine import nn, optim

    spec = NETS[key]
    x, y, weights = net_setup(key, seed)
    model = nn.MLP(spec["sizes"], activation="tanh", output_activation=spec["out_act"])
    model.load_state_dict(H.mlp_state_dict(weights))
    opt = optim.SGD(model.parameters(), lr=spec["lr"])
    xt, red = engine.from_numpy(x), spec["reduction"]

    def step() -> object:
        loss = F.mse_loss(model(xt), y, reduction=red)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def torch_step(key: str, seed: int):
    import torch

    spec = NETS[key]
    x, y, weights = net_setup(key, seed)
    model = H.torch_sequential(weights, "tanh", output_activation=spec["out_act"])
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"])
    xt, yt, red = torch.from_numpy(x), torch.from_numpy(y), spec["reduction"]
    mse = torch.nn.functional.mse_loss

    def step() -> object:
        loss = mse(model(xt), yt, reduction=red)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def child(name: str, cfg: dict) -> None:

    if name in ("ours", "scalar"):
        from gradscope.engine.perf import tune_malloc

        tune_malloc()  # what our entry points do
    if name == "torch":
        import torch

        torch.set_num_threads(cfg["threads"])
    out: dict = {}
    keys = ["b"] if name == "scalar" else ["a", "b"]
    for key in keys:
        if name == "scalar":
            from gradscope.engine.examples import TinyClassifier

            ex = TinyClassifier()
            step, first = ex.step, None
            first = float(step())
        else:
            step = (ours_step if name == "ours" else torch_step)(key, cfg["seed"])
            first = float(step().item())
        chunk = 2 if name == "scalar" else 20
        times = H.time_windows(step, cfg["warmup"], cfg["seconds"], cfg["windows"], chunk=chunk)
        out[key] = {"us": float(np.median(times)) * 1e6, "first_loss": first}
    brief = "  ".join(f"({k}) {v['us']:8.1f} us/step" for k, v in out.items())
    H.emit({"nets": out, "brief": brief})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternated rounds (default 5)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per net per child")
    ap.add_argument("--warmup", type=int, default=50, help="untimed steps per net per child")
    ap.add_argument("--windows", type=int, default=5, help="timed windows per net (median)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-scalar", action="store_true", help="skip the scalar engine")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 0.25 s (smoke test)")
    args = H.parse_or_run_child(ap, child, quick={"rounds": 2, "seconds": 0.25, "warmup": 10})
    if args is None:
        return 0

    cfg = {k: getattr(args, k) for k in ("seconds", "warmup", "windows", "threads", "seed")}
    names = ["ours", "torch"] + ([] if args.no_scalar else ["scalar"])
    jobs = H.child_jobs(__file__, names, cfg)
    print(
        f"{args.rounds} alternated rounds x {args.seconds:g} s per net per child "
        f"(+{args.warmup} warmup steps); threads={args.threads} "
        "(OPENBLAS/OMP/MKL_NUM_THREADS, torch.set_num_threads)"
    )
    print(H.versions())
    res = H.alternate(jobs, args.rounds, args.threads)

    def med(name: str, key: str) -> float:
        return float(np.median([r["nets"][key]["us"] for r in res[name]]))

    rows = []
    for key in ("a", "b"):
        ours, torch_us = med("ours", key), med("torch", key)
        row = [TITLES[key], f"{ours:.1f}", f"{torch_us:.1f}", f"{torch_us / ours:.2f}x"]
        if "scalar" in res:
            row.append(f"{med('scalar', key):.1f}" if key == "b" else "-")
        rows.append(row)
    headers = ["net", "ours us/step", "torch us/step", "speedup vs torch"]
    if "scalar" in res:
        headers.append("scalar us/step")
    print()
    print(H.table(headers, rows))
    print()
    for key in ("a", "b"):
        firsts = {
            n: res[n][0]["nets"][key]["first_loss"] for n in names if key in res[n][0]["nets"]
        }
        print(f"({key}) loss at step 1: " + ", ".join(f"{n} {v:.6f}" for n, v in firsts.items()))
        per_round = [
            t["nets"][key]["us"] / o["nets"][key]["us"] for o, t in zip(res["ours"], res["torch"])
        ]
        print(f"({key}) per-round speedup vs torch: " + " ".join(f"{x:.2f}" for x in per_round))
    print("goal: >= 3x faster than PyTorch; to resolve: faster than PyTorch on both nets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
