"""One training step of the tiny classifier: engine.scalar against the article's code.

Both models start from the same weights and run in the same process, interleaved, so
machine noise hits both alike. Prints the speed ratio and how far apart the numbers end.

    .venv/bin/python bench/scalar.py [--steps 200] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.setrecursionlimit(10_000)  # the article's recursive topological sort needs headroom

import micrograd_reference as ref  # noqa: E402

from gradscope.engine.examples import TINY_XS, TINY_YS, TinyClassifier  # noqa: E402


def reference_copy(ours: TinyClassifier, module: ModuleType = ref) -> ref.MLP:
    """The article's MLP(3, [4, 4, 1]) holding exactly our starting weights."""
    model = module.MLP(3, [4, 4, 1])
    for p, q in zip(model.parameters(), ours.model.parameters(), strict=True):
        p.data = q.data
    return model


def reference_step(model: ref.MLP, lr: float) -> float:
    """The article's training loop body, verbatim."""
    xs = [list(x) for x in TINY_XS]
    ys = list(TINY_YS)
    ypred = [model(x) for x in xs]
    loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
    for p in model.parameters():
        p.grad = 0.0
    loss.backward()
    for p in model.parameters():
        p.data += -lr * p.grad
    return loss.data


def timed(fn, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="training steps per timed round")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved timed rounds")
    args = ap.parse_args()

    # Same numbers: train from the same start, compare every loss and every final weight,
    # against the article verbatim and with its children kept in order (a tuple, not a set).
    report = []
    for name, module in [("article", ref), ("article, ordered children", ref.fresh_copy(True))]:
        ours = TinyClassifier()
        theirs = reference_copy(ours, module)
        our_losses = [ours.step() for _ in range(args.steps)]
        their_losses = [reference_step(theirs, ours.lr) for _ in range(args.steps)]
        pairs = list(zip(our_losses, their_losses)) + [
            (p.data, q.data) for p, q in zip(ours.model.parameters(), theirs.parameters())
        ]
        identical = sum(a == b for a, b in pairs)
        diff = max(abs(a - b) for a, b in pairs)
        report.append(
            f"numbers vs {name}: {identical}/{len(pairs)} bit-identical (losses of {args.steps}"
            f" steps + final weights), max abs difference {diff:.3g}"
        )

    # Speed: interleave rounds, keep the median per-step time of each.
    ours, theirs = TinyClassifier(), reference_copy(TinyClassifier())
    ours_t, theirs_t = [], []
    for _ in range(args.repeats):
        ours_t.append(timed(ours.step, args.steps))
        theirs_t.append(timed(lambda: reference_step(theirs, ours.lr), args.steps))
    ours_med, theirs_med = statistics.median(ours_t), statistics.median(theirs_t)

    print(f"tiny classifier step: ours {ours_med * 1e6:.0f} us, article {theirs_med * 1e6:.0f} us")
    print(f"speedup: {theirs_med / ours_med:.2f}x (goal >= 2x)")
    print("\n".join(report))


if __name__ == "__main__":
    main()
