"""Wall time to a test accuracy on real MNIST with a small CNN trained by our engine.

Trains one of the ARCHS below with Adam or SGD (momentum, Nesterov) under a per-step
learning-rate schedule (constant, or one-cycle: linear warm-up then linear or cosine
decay to zero over --epochs), on mini-batches of standardized 28x28 images shuffled by
one numpy generator, and evaluates the 10,000 test images after every epoch. It prints
each epoch's test accuracy, train and eval seconds and the wall time so far, and the
time at which --target was first reached. The clock starts after the data is loaded and
includes shuffling, training and the evaluations. BLAS threads are pinned to --threads
(in a child process, so the pin holds before numpy loads).

    .venv/bin/python bench/mnist_cnn.py [--arch lenet] [--epochs 1] [--target 0.985]

Data: the gzip IDX files in $GRADSCOPE_MNIST_DIR (default ../shared/mnist).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

DEFAULT_DIR = str(Path(__file__).resolve().parents[2] / "shared" / "mnist")
MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and standard deviation (of x / 255)
EVAL_CHUNK = 2000

# Layer lists: (kind, args). "conv" is (in, out, kernel, padding); "bn" (channels);
# "pool" (kernel); "linear" (in, out); "drop" (p).
ARCHS: dict[str, list[tuple[str, tuple]]] = {
    # LeNet-5 as bench/conv.py runs it (ReLU, max pooling).
    "lenet": [
        ("conv", (1, 6, 5, 2)), ("relu", ()), ("pool", (2,)),
        ("conv", (6, 16, 5, 0)), ("relu", ()), ("pool", (2,)),
        ("flatten", ()), ("linear", (400, 120)), ("relu", ()),
        ("linear", (120, 84)), ("relu", ()), ("linear", (84, 10)),
    ],
    # Wider LeNet: 8 and 16 channels, one hidden layer.
    "lenet-wide": [
        ("conv", (1, 8, 5, 2)), ("relu", ()), ("pool", (2,)),
        ("conv", (8, 16, 5, 0)), ("relu", ()), ("pool", (2,)),
        ("flatten", ()), ("linear", (400, 128)), ("relu", ()), ("linear", (128, 10)),
    ],
    # LeNet with BatchNorm after each conv.
    "lenet-bn": [
        ("conv", (1, 8, 5, 2)), ("bn", (8,)), ("relu", ()), ("pool", (2,)),
        ("conv", (8, 16, 5, 0)), ("bn", (16,)), ("relu", ()), ("pool", (2,)),
        ("flatten", ()), ("linear", (400, 128)), ("relu", ()), ("linear", (128, 10)),
    ],
    # A small modern CNN: 3x3 convs with BatchNorm, two stages.
    "small": [
        ("conv", (1, 16, 3, 1)), ("bn", (16,)), ("relu", ()), ("pool", (2,)),
        ("conv", (16, 32, 3, 1)), ("bn", (32,)), ("relu", ()), ("pool", (2,)),
        ("flatten", ()), ("linear", (32 * 7 * 7, 128)), ("relu", ()), ("linear", (128, 10)),
    ],
}  # fmt: skip


def build(arch: str) -> Any:
    from gradscope.engine import nn

    make = {
        "conv": lambda c_in, c_out, k, p: nn.Conv2d(c_in, c_out, k, padding=p),
        "bn": nn.BatchNorm2d,
        "relu": nn.ReLU,
        "pool": nn.MaxPool2d,
        "flatten": nn.Flatten,
        "linear": nn.Linear,
        "drop": nn.Dropout,
    }
    return nn.Sequential(*(make[kind](*a) for kind, a in ARCHS[arch]))


def load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (N, 1, 28, 28) standardized, y int64 (N,))."""
    from gradscope.engine.mnist import load_mnist

    x, y = load_mnist(split, directory=folder, download=False)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return x.reshape(-1, 1, 28, 28).astype(np.float32, copy=False), y


def lr_at(cfg: dict, step: int, total: int) -> float:
    """The learning rate of step (0-based) of total: constant or one-cycle."""
    base = cfg["lr"]
    if cfg["schedule"] == "constant":
        return base
    warm = max(1, int(cfg["warmup"] * total))
    if step < warm:
        return base * (step + 1) / warm
    frac = (step - warm) / max(1, total - warm)
    if cfg["schedule"] == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * frac))
    return base * (1 - frac)


def child(name: str, cfg: dict) -> None:
    from gradscope.engine.perf import tune_malloc

    tune_malloc()
    import gradscope.engine.nn.functional as F
    from gradscope import engine
    from gradscope.engine import optim

    folder = Path(cfg["data_dir"])
    xtr, ytr = load(folder, "train")
    xte, yte = load(folder, "test")
    if cfg["train_limit"]:
        xtr, ytr = xtr[: cfg["train_limit"]], ytr[: cfg["train_limit"]]
    engine.manual_seed(cfg["seed"])
    model = build(cfg["arch"])
    params = model.parameters()
    if cfg["opt"] == "adam":
        opt: Any = optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["wd"])
    else:
        opt = optim.SGD(
            params, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True, weight_decay=cfg["wd"]
        )
    rng = np.random.default_rng(cfg["seed"])
    batch, n = cfg["batch"], len(xtr)
    per_epoch = n // batch  # the last partial batch is dropped: every step is full
    total = per_epoch * cfg["epochs"]

    def accuracy() -> float:
        model.eval()
        correct = 0
        with engine.no_grad():
            for s in range(0, len(xte), EVAL_CHUNK):
                logits = model(engine.from_numpy(xte[s : s + EVAL_CHUNK])).data
                correct += int((logits.argmax(axis=1) == yte[s : s + EVAL_CHUNK]).sum())
        model.train()
        return correct / len(xte)

    epochs, reached = [], None
    step = 0
    t0 = time.perf_counter()
    for epoch in range(1, cfg["epochs"] + 1):
        te = time.perf_counter()
        order = rng.permutation(n)
        loss = None
        for b in range(per_epoch):
            idx = order[b * batch : (b + 1) * batch]
            opt.lr = lr_at(cfg, step, total)
            loss = F.cross_entropy(model(engine.from_numpy(xtr[idx])), ytr[idx])
            H.backward_step(opt, loss)
            step += 1
        tt = time.perf_counter()
        acc = accuracy()
        now = time.perf_counter()
        epochs.append(
            {
                "acc": acc,
                "loss": float(loss.item()),
                "train_s": tt - te,
                "eval_s": now - tt,
                "wall_s": now - t0,
            }
        )
        print(
            f"epoch {epoch}: test acc {acc:.4f}  loss {loss.item():.4f}  train {tt - te:.1f} s"
            f"  eval {now - tt:.1f} s  wall {now - t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        if reached is None and acc >= cfg["target"]:
            reached = {"epoch": epoch, "wall_s": now - t0}
            if cfg["stop"]:
                break
    H.emit({"epochs": epochs, "reached": reached, "params": model.num_parameters()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="lenet")
    ap.add_argument("--opt", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD (Nesterov) only")
    ap.add_argument("--wd", type=float, default=0.0, help="weight decay (L2)")
    ap.add_argument("--schedule", choices=["constant", "onecycle", "cosine"], default="onecycle")
    ap.add_argument("--warmup", type=float, default=0.1, help="one-cycle warm-up fraction")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1, help="the schedule spans this many")
    ap.add_argument("--target", type=float, default=0.99, help="test accuracy to time")
    ap.add_argument("--stop", action="store_true", help="stop once --target is reached")
    ap.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=os.environ.get("GRADSCOPE_MNIST_DIR", DEFAULT_DIR))
    ap.add_argument("--quick", action="store_true", help="smoke test: 5,000 images, 1 epoch")
    args = H.parse_or_run_child(ap, child, quick={"epochs": 1})
    if args is None:
        return 0
    cfg = {k: getattr(args, k) for k in ("arch", "opt", "lr", "momentum", "wd", "schedule")}
    cfg |= {k: getattr(args, k) for k in ("warmup", "batch", "epochs", "target", "stop")}
    cfg |= {"seed": args.seed, "data_dir": args.data_dir}
    cfg["train_limit"] = 5000 if args.quick else 0
    print(
        f"MNIST CNN '{args.arch}', {args.opt} lr {args.lr:g} ({args.schedule}, warm-up "
        f"{args.warmup:g}), batch {args.batch}, {args.epochs} epoch(s), weight decay "
        f"{args.wd:g}; threads={args.threads}; {H.versions()}"
    )
    t = time.perf_counter()
    argv = [str(Path(__file__).resolve()), "--child", "ours", "--config", json.dumps(cfg)]
    res = H.run_child(argv, args.threads)
    print(f"(child ran {time.perf_counter() - t:.1f} s including data loading)")
    print(f"{res['params']:,} parameters")
    rows = [
        [str(i), f"{e['acc']:.2%}", f"{e['loss']:.4f}"]
        + [f"{e[k]:.1f}" for k in ("train_s", "eval_s", "wall_s")]
        for i, e in enumerate(res["epochs"], 1)
    ]
    print(H.table(["epoch", "test acc", "last loss", "train s", "eval s", "wall s"], rows))
    r = res["reached"]
    if r:
        print(f"reached {args.target:.2%} at epoch {r['epoch']}, {r['wall_s']:.1f} s wall")
    else:
        print(f"did NOT reach {args.target:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
