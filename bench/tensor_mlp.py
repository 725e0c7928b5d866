"""Training throughput of an MLP 784-256-128-10: our engine vs PyTorch eager vs plain numpy.

One SGD step (lr 0.1, no momentum) of softmax cross-entropy on a float32 batch of 128,
over a fixed set of random batches cycled in order. Every implementation starts from the
same weights and runs in its own subprocess with BLAS/OpenMP pinned to --threads threads.
The children stay alive and the parent gives them turns, --rounds rounds in rotating
order, each turn --settle untimed seconds then --seconds timed (so the two sides of a
comparison are measured within a second or two of each other); --fresh instead starts a
new child for every turn (the earlier method). It reports medians and same-round ratios.

    .venv/bin/python bench/tensor_mlp.py [--rounds 30] [--seconds 0.5] [--fresh] [--quick]

Implementations:
  ours          engine.nn.MLP + optim.SGD + F.cross_entropy, after engine.perf.tune_malloc()
  torch         torch 2.13 eager, torch.set_num_threads(threads), nn.Sequential + optim.SGD
  numpy         a hand-written numpy forward/backward (below): no buffers, default malloc
  numpy+malloc  the same numpy code after engine.perf.tune_malloc() (for information)
  ours-nomalloc our engine without tune_malloc (only with --untuned, for information)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

SIZES = (784, 256, 128, 10)


def make_data(cfg: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`n_batches` batches of pixels in [0, 1) and random digit labels, from a fixed seed."""
    rng = np.random.default_rng(cfg["seed"])
    n, b = cfg["n_batches"], cfg["batch"]
    x = rng.random((n * b, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], n * b).astype(np.int64)
    return [x[i * b : (i + 1) * b] for i in range(n)], [y[i * b : (i + 1) * b] for i in range(n)]


def init_weights(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """PyTorch's Linear init, weight (out, in), drawn once so all three start the same."""
    return H.linear_init(SIZES, np.random.default_rng(seed + 1))


# -- the hand-written numpy reference: what a person writes without thinking about speed --


class NumpyMLP:
    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.W = [w.T.copy() for w, _ in weights]  # (in, out): h @ W + b
        self.b = [b.copy() for _, b in weights]

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        # forward, keeping each layer's input
        hs = [x]
        h = x
        last = len(self.W) - 1
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = h @ W + b
            h = np.maximum(z, 0) if i < last else z
            hs.append(h)
        # softmax cross-entropy
        n = len(y)
        z = h - h.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), y]).mean()
        # backward + SGD update
        g = p.copy()
        g[np.arange(n), y] -= 1
        g /= n
        for i in reversed(range(len(self.W))):
            gW = hs[i].T @ g
            gb = g.sum(axis=0)
            if i > 0:
                g = (g @ self.W[i].T) * (hs[i] > 0)
            self.W[i] -= lr * gW
            self.b[i] -= lr * gb
        return float(loss)


# -- children ------------------------------------------------------------------------------


def child(name: str, cfg: dict) -> None:
    if name in ("ours", "numpy+malloc"):
        from gradscope.engine.perf import tune_malloc

        tune_malloc()
    xs, ys = make_data(cfg)
    weights = init_weights(cfg["seed"])
    lr, nb = cfg["lr"], cfg["n_batches"]
    i = 0

    # train(x, y): one SGD step on one batch; its loss (a tensor, or a float for numpy)
    if name in ("ours", "ours-nomalloc"):
        import gradscope.engine.nn.functional as F
        from gradscope import engine
        from gradscope.engine import nn, optim

        model = nn.MLP(list(SIZES), activation="relu")
        model.load_state_dict(H.mlp_state_dict(weights))
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.0)

        def train(x: np.ndarray, y: np.ndarray) -> object:
            return H.backward_step(opt, F.cross_entropy(model(engine.from_numpy(x)), y))

    elif name == "torch":
        import torch

        torch.set_num_threads(cfg["threads"])
        xs = [torch.from_numpy(x) for x in xs]
        ys = [torch.from_numpy(y) for y in ys]
        model_t = H.torch_sequential(weights, "relu")
        opt_t = torch.optim.SGD(model_t.parameters(), lr=lr, momentum=0.0)
        ce = torch.nn.functional.cross_entropy

        def train(x: torch.Tensor, y: torch.Tensor) -> object:
            return H.backward_step(opt_t, ce(model_t(x), y))

    elif name in ("numpy", "numpy+malloc"):
        net = NumpyMLP(weights)

        def train(x: np.ndarray, y: np.ndarray) -> object:
            return net.step(x, y, lr)

    else:
        raise SystemExit(f"unknown implementation {name!r}")

    def step() -> object:
        nonlocal i
        loss = train(xs[i], ys[i])
        i = (i + 1) % nb
        return loss

    loss = step()  # step 1 from the shared initial weights: must agree
    first = loss if isinstance(loss, float) else float(loss.item())  # type: ignore[attr-defined]
    if cfg.get("serve"):
        H.serve(step, cfg["warmup"], {"first_loss": first}, batch=cfg["batch"])
        return
    times = H.time_windows(step, cfg["warmup"], cfg["seconds"], windows=cfg["windows"])
    per_step = float(np.median(times))
    H.emit(
        {
            "samples_per_s": cfg["batch"] / per_step,
            "step_ms": per_step * 1e3,
            "windows_ms": [t * 1e3 for t in times],
            "first_loss": first,
            "brief": f"{cfg['batch'] / per_step:9.0f} samples/s  first loss {first:.5f}",
        }
    )


# -- parent --------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30, help="rounds of turns (default 30)")
    ap.add_argument("--seconds", type=float, default=0.5, help="timed seconds per turn")
    ap.add_argument("--settle", type=float, default=0.3, help="untimed seconds before each")
    ap.add_argument("--fresh", action="store_true", help="a new child process for every turn")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps per child")
    ap.add_argument("--windows", type=int, default=5, help="with --fresh: timed windows (median)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-batches", type=int, default=60, help="random batches, cycled")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP/torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-tuned-numpy", action="store_true", help="skip the numpy+malloc line")
    ap.add_argument("--untuned", action="store_true", help="also run ours without tune_malloc")
    ap.add_argument("--quick", action="store_true", help="2 short rounds (smoke test)")
    args = H.parse_or_run_child(
        ap, child, quick={"rounds": 2, "seconds": 0.2, "settle": 0.05, "warmup": 5}
    )
    if args is None:
        return 0

    cfg = {k: getattr(args, k) for k in ("seconds", "warmup", "windows", "batch", "lr", "seed")}
    cfg |= {"n_batches": args.n_batches, "threads": args.threads, "serve": not args.fresh}
    names = ["ours", "torch", "numpy"]
    if not args.no_tuned_numpy:
        names.append("numpy+malloc")
    if args.untuned:
        names.append("ours-nomalloc")
    jobs = H.child_jobs(__file__, names, cfg)

    print(
        f"MLP {'-'.join(map(str, SIZES))} relu, batch {args.batch}, SGD lr {args.lr}, "
        f"cross-entropy, float32; {args.n_batches} random batches cycled"
    )
    how = (
        f"a fresh child per turn, {args.seconds:g} s each (+{args.warmup} warmup steps)"
        if args.fresh
        else f"children kept alive, turns of {args.settle:g} s settling + {args.seconds:g} s timed"
    )
    print(
        f"{args.rounds} rounds in rotating order, {how}; threads={args.threads}"
        " (OPENBLAS/OMP/MKL_NUM_THREADS, torch.set_num_threads)"
    )
    print(H.versions())
    if args.fresh:
        res = H.alternate(jobs, args.rounds, args.threads)
        first = {n: res[n][0]["first_loss"] for n in names}
    else:
        info, res = H.interleave(jobs, args.rounds, args.seconds, args.settle, args.threads)
        first = {n: info[n]["first_loss"] for n in names}

    sps = {n: H.median_of(res[n], "samples_per_s") for n in names}
    rows = []
    for n in names:
        all_sps = sorted(r["samples_per_s"] for r in res[n])
        rows.append(
            [
                n,
                f"{sps[n]:,.0f}",
                f"{1e3 * args.batch / sps[n]:.2f}",
                f"{all_sps[0]:,.0f}..{all_sps[-1]:,.0f}",
                f"{first[n]:.6f}",
            ]
        )
    print()
    print(
        H.table(
            ["implementation", "samples/s", "ms/step", "range over rounds", "loss at step 1"],
            rows,
        )
    )
    print()
    ours = sps["ours"]
    # The host's noise only ever slows a child down and comes in bursts of seconds that
    # halve a child's speed (rounds fall in a fast and a slow mode): a median over rounds
    # lands on whichever mode holds the middle round, so one side's median can read 0.7x
    # while ours wins in both modes. Turns next to each other within a round share the
    # host's state, so the paired figure (median of same-round ratios) is the one judged;
    # the medians of each side and the best rounds are printed for information.
    verdicts = {"torch": "to resolve: >= 0.6x; goal >= 1.0x", "numpy": "to resolve: >= 1.0x"}
    for ref in ("torch", "numpy"):
        pairs = [r["samples_per_s"] / t["samples_per_s"] for r, t in zip(res["ours"], res[ref])]
        best = max(r["samples_per_s"] for r in res["ours"]) / max(
            t["samples_per_s"] for t in res[ref]
        )
        print(
            f"ours / {ref:<5} = {np.median(pairs):.2f}x   median of same-round ratios"
            f" ({verdicts[ref]})"
        )
        print("  per round: " + " ".join(f"{x:.2f}" for x in pairs))
        print(
            f"  information: median vs median {ours / sps[ref]:.2f}x,"
            f" best round vs best round {best:.2f}x,"
            f" rounds ours won {sum(x > 1 for x in pairs)}/{len(pairs)}"
        )
    if "numpy+malloc" in sps:
        print(f"ours / numpy+malloc = {ours / sps['numpy+malloc']:.2f}x   (information)")
    if "ours-nomalloc" in sps:
        print(f"ours / ours-nomalloc = {ours / sps['ours-nomalloc']:.2f}x   (tune_malloc's gain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
