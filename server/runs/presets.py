"""The presets' raw configs and texts (gradscope.server.runs.config validates them into PRESETS).

The two articles come first, exactly as engine.examples runs them; then the 2-D toy sets
and MNIST on the tensor engine, each tuned to reach a good test accuracy quickly.
"""

from __future__ import annotations

from typing import Any

from gradscope.engine.examples import NAPKIN_START_WEIGHTS, TINY_SEED

# Steps a second of the small presets: each run lasts 20-60 s and every step is drawn (a
# frame each, up to the loop's 60 a second). MNIST presets go as fast as the machine does.
TOY_PACE = 30.0


def _toy(
    name: str,
    hidden: list[int],
    activation: str,
    steps: int,
    noise: float = 0.1,
    pace: float = TOY_PACE,
) -> dict[str, Any]:
    return {
        "dataset": {"name": name, "n": 400, "noise": noise, "seed": 0, "test_n": 400},
        "model": {"hidden": hidden, "activation": activation},
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "lr": 0.01},
        "batch_size": 32,
        "steps": steps,
        "pace": pace,
    }


def _article(name: str, title: str, text: str) -> tuple[str, str, str, dict[str, Any], bool]:
    """An article's hand-worked expression: its leaves descend on its output, 0.01 a step
    (the article's nudge), a step a second, starting paused. The data set is never read."""
    config = {
        "engine": "scalar",
        "dataset": {"name": "rectangles", "n": 1, "test_n": 1, "size": 2, "seed": 0},
        "model": {"kind": name, "hidden": []},
        "loss": "mse",
        "optimizer": {"name": "sgd", "lr": 0.01},
        "steps": 20,
        "pace": 1.0,
        "start_paused": True,
    }
    return name, title, text, config, False


PRESET_SPECS: list[tuple[str, str, str, dict[str, Any], bool]] = [
    (
        "napkin-average",
        "Napkin: learn the average",
        "The first article: one linear neuron without bias learns the average of the four "
        "pixels of 2x2 rectangles by full-batch gradient descent; its weights walk from "
        "0.98, 0.4, 0.86, -0.08 to 0.25 each.",
        {
            "engine": "scalar",
            "dataset": {"name": "rectangles", "n": 1000, "size": 2, "seed": 0},
            "model": {
                "hidden": [],
                "output": "linear",
                "bias": False,
                "start_weights": list(NAPKIN_START_WEIGHTS),
            },
            "loss": "mse",
            "optimizer": {"name": "sgd", "lr": 0.1},
            "steps": 300,
            "pace": 10.0,  # 30 s: the weights walk to 0.25 slowly enough to follow
        },
        True,
    ),
    (
        "micrograd-classifier",
        "micrograd: tiny classifier",
        "The second article: MLP(3, [4, 4, 1]) with tanh fits four samples to +-1 by plain "
        "gradient descent on the summed squared error, every Value in the graph visible.",
        {
            "engine": "scalar",
            "dataset": {"name": "tiny"},
            "model": {"hidden": [4, 4], "activation": "tanh", "output": "tanh"},
            "loss": "mse",
            "reduction": "sum",
            "optimizer": {"name": "sgd", "lr": 0.1},
            "steps": 100,
            "seed": TINY_SEED,
            "pace": 4.0,  # 25 s: every Value's data and grad, step by step
        },
        True,
    ),
    _article(
        "micrograd-expression",
        "micrograd: L = (a·b + c)·f by hand",
        "The second article's first hand-worked graph: e = a*b, d = e + c, L = d*f with a=2, "
        "b=-3, c=10, f=-2, so L = -8 and the grads are a 6, b -4, c -2, f 4, d -2, e -2. Starts "
        "paused: step through the forward and backward pass node by node, then take a few "
        "gradient steps that push L down.",
    ),
    _article(
        "micrograd-neuron",
        "micrograd: one neuron by hand",
        "The second article's neuron o = tanh(x1*w1 + x2*w2 + b) with x1=2, x2=0, w1=-3, "
        "w2=1, b=6: n = 0, o = 0, and the grads x1 -3, w1 2, x2 1, w2 0. Starts paused: "
        "step through backprop one _backward() at a time.",
    ),
    (
        "moons",
        "Two moons",
        "Two interleaved half circles, separated by a small ReLU network.",
        _toy("moons", [16, 16], "relu", 600),
        False,
    ),
    (
        "circle",
        "Circle",
        "A disc inside a ring: the network has to learn a closed boundary.",
        _toy("circle", [16, 16], "relu", 600),
        False,
    ),
    (
        "xor",
        "XOR",
        "Opposite quadrants share a class: no straight line separates them.",
        _toy("xor", [16, 16], "relu", 600),
        False,
    ),
    (
        "spiral",
        "Spiral",
        "Two interleaved spirals (less noise, or they overlap): a wider, deeper tanh "
        "network and more steps.",
        _toy("spiral", [32, 32, 32], "tanh", 2000, noise=0.05, pace=50.0),
        False,
    ),
    (
        "gauss",
        "Two blobs",
        "Two gaussian clusters: the easiest boundary, a straight line found in seconds.",
        _toy("gauss", [4], "tanh", 600, noise=0.2),
        False,
    ),
    (
        "mnist-mlp",
        "MNIST digits",
        "A 784-256-128-10 ReLU network reads handwritten digits: Adam, batches of 64, "
        "3 epochs (inputs standardized), about 97.4% test accuracy.",
        {
            "dataset": {"name": "mnist"},
            "model": {"hidden": [256, 128], "activation": "relu"},
            "loss": "cross_entropy",
            "optimizer": {"name": "adam", "lr": 1e-3},
            "batch_size": 64,
            "epochs": 3,
            "record": {"checkpoint_every": 1000},
        },
        False,
    ),
    (
        "mnist-98",
        "MNIST digits, 98%",
        "The model behind /draw: a wider 784-512-256-10 ReLU network, SGD with Nesterov "
        "momentum 0.9, lr 0.02, batches of 64, 20 epochs (inputs standardized), about 98.5% "
        "test accuracy.",
        {
            "dataset": {"name": "mnist"},
            "model": {"hidden": [512, 256], "activation": "relu"},
            "loss": "cross_entropy",
            "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9, "nesterov": True},
            "batch_size": 64,
            "epochs": 20,
            "record": {"checkpoint_every": 2000},
        },
        False,
    ),
    (
        "mnist-cnn",
        "MNIST CNN, 99%",
        "A small LeNet-like CNN: two 5x5 conv layers (8 and 16 maps) each with BatchNorm, "
        "ReLU and 2x2 max pooling, then 128 ReLU units; Adam lr 3e-3 with a one-cycle "
        "schedule (10% warm-up, linear decay to 0), batches of 64, 2 epochs (inputs "
        "standardized), about 99.2% test accuracy. The CNN panel shows its kernels and "
        "what each layer makes of one test digit.",
        {
            "dataset": {"name": "mnist"},
            "model": {
                "kind": "cnn",
                "conv": [
                    {"channels": 8, "kernel": 5, "padding": 2, "pool": 2, "batch_norm": True},
                    {"channels": 16, "kernel": 5, "padding": 0, "pool": 2, "batch_norm": True},
                ],
                "hidden": [128],
                "activation": "relu",
            },
            "loss": "cross_entropy",
            "optimizer": {"name": "adam", "lr": 3e-3, "schedule": "onecycle", "warmup": 0.1},
            "batch_size": 64,
            "epochs": 2,
            "record": {"checkpoint_every": 1000},
        },
        False,
    ),
]
