"""Wall time to 98% test accuracy on real MNIST: our engine vs PyTorch, same recipe.

Both sides train the same MLP from the same initial weights with the same optimizer, on
the same shuffled mini-batches (one numpy generator draws each epoch's permutation), and
evaluate the 10,000 test images after every epoch, stopping at the first epoch that
reaches --target (cap --max-epochs). Each side runs in its own subprocess with
BLAS/OpenMP and torch pinned to --threads threads; ours calls engine.perf.tune_malloc()
first, as our entry points do. The clock starts after the data is loaded and normalized
and includes shuffling, training and the per-epoch evaluations.

Data: the gzip IDX files in $GRADSCOPE_MNIST_DIR (default ../shared/mnist), read with
engine.data.load_mnist when it works, else with the small reader below.

    .venv/bin/python bench/mnist98.py [--opt adam --lr 1e-3 --batch 128] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

DEFAULT_DIR = str(Path(__file__).resolve().parents[2] / "shared" / "mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and standard deviation (of x / 255)


def read_idx_local(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A tiny IDX reader: images (N, 784) uint8 after a 16-byte header, labels after 8."""
    img_name, lbl_name = FILES[split]
    with gzip.open(folder / img_name, "rb") as f:
        x = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(folder / lbl_name, "rb") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{folder}: {len(x)} {split} images but {len(y)} labels")
    return x, y


def load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(X float32 standardized (N, 784), y int64 (N,), which loader was used)."""
    try:
        from gradscope.engine.data import load_mnist

        x, y = load_mnist(split, directory=folder, download=False)  # float32 in [0, 1]
        source = "engine.data.load_mnist"
    except Exception as e:
        print(
            f"engine.data.load_mnist failed ({type(e).__name__}: {e}); using the local reader",
            file=sys.stderr,
        )
        raw, y = read_idx_local(folder, split)
        x = raw.astype(np.float32) / np.float32(255)
        source = "bench/mnist98.py reader"
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False), source


def init_weights(sizes: list[int], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """PyTorch's Linear init, weight (out, in), drawn once so both sides start the same."""
    return H.linear_init(sizes, np.random.default_rng(seed + 1))


# -- the two trainers: build(weights) -> (train_epoch(order), accuracy(), set_lr(lr)) ------


def epoch_trainer(
    opt: Any, batch_loss: Callable[[Any], Any], batch: int, to_index: Callable[[Any], Any]
) -> Callable[[np.ndarray], float]:
    """train_epoch(order): a step of `opt` on `batch_loss(idx)` per batch of to_index(order)."""

    def train_epoch(order: np.ndarray) -> float:
        idx_all = to_index(order)
        loss = None
        for s in range(0, len(idx_all), batch):
            loss = H.backward_step(opt, batch_loss(idx_all[s : s + batch]))
        return float(loss.item())

    return train_epoch


def build_ours(cfg: dict, data: tuple, weights: list):
    import gradscope.engine.nn.functional as F
    from gradscope import engine
    from gradscope.engine import nn, optim

    xtr, ytr, xte, yte = data
    model = nn.MLP(cfg["sizes"], activation="relu")
    model.load_state_dict(H.mlp_state_dict(weights))
    if cfg["opt"] == "adam":
        opt = optim.Adam(model.parameters(), lr=cfg["lr"])
    else:
        opt = optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])

    def batch_loss(idx: np.ndarray) -> engine.Tensor:
        return F.cross_entropy(model(engine.from_numpy(xtr[idx])), ytr[idx])

    train_epoch = epoch_trainer(opt, batch_loss, cfg["batch"], lambda order: order)

    def accuracy() -> float:
        with engine.no_grad():
            logits = model(engine.from_numpy(xte)).data
        return float((logits.argmax(axis=1) == yte).mean())

    def set_lr(lr: float) -> None:
        opt.lr = lr

    return train_epoch, accuracy, set_lr


def build_torch(cfg: dict, data: tuple, weights: list):
    import torch

    torch.set_num_threads(cfg["threads"])
    xtr, ytr, xte, yte = (torch.from_numpy(a) for a in data)
    model = H.torch_sequential(weights, "relu")
    if cfg["opt"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    ce = torch.nn.functional.cross_entropy

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return ce(model(xtr[idx]), ytr[idx])

    train_epoch = epoch_trainer(opt, batch_loss, cfg["batch"], torch.from_numpy)

    def accuracy() -> float:
        with torch.no_grad():
            logits = model(xte)
        return float((logits.argmax(dim=1) == yte).double().mean())

    def set_lr(lr: float) -> None:
        for group in opt.param_groups:
            group["lr"] = lr

    return train_epoch, accuracy, set_lr


def child(name: str, cfg: dict) -> None:
    if name == "ours":
        from gradscope.engine.perf import tune_malloc

        tune_malloc()
    folder = Path(cfg["data_dir"])
    t_load = time.perf_counter()
    xtr, ytr, source = load(folder, "train")
    xte, yte, _ = load(folder, "test")
    if cfg["train_limit"]:
        xtr, ytr = xtr[: cfg["train_limit"]], ytr[: cfg["train_limit"]]
    load_s = time.perf_counter() - t_load
    weights = init_weights(cfg["sizes"], cfg["seed"])
    build = build_ours if name == "ours" else build_torch
    train_epoch, accuracy, set_lr = build(cfg, (xtr, ytr, xte, yte), weights)
    rng = np.random.default_rng(cfg["seed"])

    epochs: list[dict] = []
    reached = None
    t0 = time.perf_counter()
    for epoch in range(1, cfg["max_epochs"] + 1):
        set_lr(cfg["lr"] * cfg["gamma"] ** (epoch - 1))
        te = time.perf_counter()
        order = rng.permutation(len(xtr))
        loss = train_epoch(order)
        tt = time.perf_counter()
        acc = accuracy()
        now = time.perf_counter()
        epochs.append({"train_s": tt - te, "eval_s": now - tt, "acc": acc, "loss": loss})
        print(
            f"{name} epoch {epoch}: acc {acc:.4f} loss {loss:.4f} {now - te:.2f} s",
            file=sys.stderr,
            flush=True,
        )
        if acc >= cfg["target"]:
            reached = epoch
            break
    wall = time.perf_counter() - t0
    H.emit(
        {
            "wall_s": wall,
            "reached": reached,
            "epochs": epochs,
            "load_s": load_s,
            "source": source,
            "brief": f"{wall:6.1f} s, {len(epochs)} epochs, final acc {epochs[-1]['acc']:.4f}"
            + ("" if reached else "  (target NOT reached)"),
        }
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="784,256,128,10", help="MLP layer sizes (relu)")
    ap.add_argument("--opt", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD only")
    ap.add_argument("--gamma", type=float, default=0.7, help="lr multiplier per epoch")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--target", type=float, default=0.98, help="test accuracy to reach")
    ap.add_argument("--max-epochs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3, help="alternated runs per side")
    ap.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP/torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sides", default="ours,torch", help="comma list of ours, torch")
    ap.add_argument("--data-dir", default=os.environ.get("GRADSCOPE_MNIST_DIR", DEFAULT_DIR))
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 10,000 training images, 1 epoch, target 90%%",
    )
    args = H.parse_or_run_child(ap, child, quick={"max_epochs": 1, "target": 0.90, "rounds": 1})
    if args is None:
        return 0

    train_limit = 10_000 if args.quick else 0
    cfg = {
        "sizes": [int(s) for s in args.sizes.split(",")],
        "opt": args.opt,
        "lr": args.lr,
        "momentum": args.momentum,
        "gamma": args.gamma,
        "batch": args.batch,
        "target": args.target,
        "max_epochs": args.max_epochs,
        "threads": args.threads,
        "seed": args.seed,
        "data_dir": args.data_dir,
        "train_limit": train_limit,
    }
    names = [s.strip() for s in args.sides.split(",") if s.strip()]
    jobs = H.child_jobs(__file__, names, cfg)

    opt = (
        f"Adam lr {args.lr:g}"
        if args.opt == "adam"
        else f"SGD lr {args.lr:g} momentum {args.momentum:g}"
    )
    print(
        f"MNIST: MLP {args.sizes.replace(',', '-')} relu, {opt}, lr x{args.gamma:g} per epoch, "
        f"batch {args.batch}, cross-entropy, pixels standardized; target test acc "
        f"{args.target:.2%} (cap {args.max_epochs} epochs)"
    )
    print(f"threads={args.threads}, data {args.data_dir}; {H.versions()}")
    res = H.alternate(jobs, args.rounds, args.threads)

    rows = []
    for n in names:
        walls = [r["wall_s"] for r in res[n]]
        best = sorted(res[n], key=lambda r: r["wall_s"])[(len(walls) - 1) // 2]  # median run
        e = best["epochs"]
        rows.append(
            [
                n,
                f"{float(np.median(walls)):.1f}" + ("" if best["reached"] else " (not reached)"),
                str(best["reached"] or f">{len(e)}"),
                f"{e[-1]['acc']:.2%}",
                f"{float(np.median([x['train_s'] for x in e])):.2f}",
                f"{float(np.median([x['eval_s'] for x in e])):.3f}",
                f"{best['load_s']:.1f}",
            ]
        )
    print()
    print(
        H.table(
            [
                "side",
                "wall s to target",
                "epochs",
                "final test acc",
                "s/epoch (train)",
                "eval s",
                "load s (excluded)",
            ],
            rows,
        )
    )
    print()
    for n in names:
        accs = " ".join(f"{x['acc']:.4f}" for x in res[n][0]["epochs"])
        print(f"{n} test acc per epoch: {accs}   (data via {res[n][0]['source']})")
    if "ours" in res and "torch" in res:
        o = float(np.median([r["wall_s"] for r in res["ours"]]))
        t = float(np.median([r["wall_s"] for r in res["torch"]]))
        print(f"ours / torch wall time = {o / t:.2f} (below 1 means ours is faster)")
        status = "met" if o < 30 and all(r["reached"] for r in res["ours"]) else "NOT met"
        print(f"goal: ours < 30 s to {args.target:.0%}: {status} ({o:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
