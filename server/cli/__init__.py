"""The `gradscope` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from gradscope.engine.examples import Example, NapkinAverage, TinyClassifier
from gradscope.engine.graph import to_dot
from gradscope.engine.perf import tune_malloc
from gradscope.server.cli import commands

DEMOS = {
    "napkin": (NapkinAverage, 300, "a linear neuron learns to average 2x2 pixel rectangles"),
    "micrograd": (TinyClassifier, 100, "the tiny classifier MLP(3, [4, 4, 1]) fits four samples"),
}


def _describe(example: Example) -> str:
    if isinstance(example, NapkinAverage):
        return "weights " + " ".join(f"{w:+.4f}" for w in example.weights)
    preds = " ".join(f"{p.data:+.3f}" for p in example.predictions())
    return f"predictions {preds}"


def demo(
    name: str, steps: int | None, lr: float, seed: int | None, every: int, dot: Path | None
) -> int:
    """Train one of the articles' examples in the terminal, printing progress."""
    cls, default_steps, what = DEMOS[name]
    kwargs: dict[str, float | int] = {"lr": lr}
    if seed is not None:
        kwargs["seed"] = seed
    example = cls(**kwargs)
    steps = default_steps if steps is None else steps
    print(f"{name}: {what}; {steps} steps, learning rate {lr}")
    width = len(str(steps))
    for i in range(1, steps + 1):
        loss = example.step()
        if i == 1 or i == steps or i % every == 0:
            print(f"step {i:>{width}}/{steps}  loss {loss:.6f}  {_describe(example)}", flush=True)
    if dot is not None and example.last_loss is not None:
        dot.write_text(to_dot(example.last_loss))
        print(f"wrote the last step's computation graph (Graphviz DOT) to {dot}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradscope", description="Watch a neural network learn.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train one of the two articles' examples in the terminal")
    d.add_argument("name", choices=sorted(DEMOS))
    d.add_argument("--steps", type=int, help="gradient-descent steps (default: 300 / 100)")
    d.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    d.add_argument("--seed", type=int, help="seed for the data (napkin) or the weights (micrograd)")
    d.add_argument("--every", type=int, default=10, help="print progress every N steps")
    d.add_argument("--dot", type=Path, help="write the last loss graph as Graphviz DOT here")
    commands.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gradscope` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_malloc()  # numpy's big temporaries reuse heap memory instead of fresh mmaps
    if args.command == "demo":
        if args.steps is not None and args.steps < 1:
            parser.error("--steps must be at least 1")
        if args.every < 1:
            parser.error("--every must be at least 1")
        return demo(args.name, args.steps, args.lr, args.seed, args.every, args.dot)
    if args.command in commands.HANDLERS:
        return commands.HANDLERS[args.command](args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse guards it
    return 2
