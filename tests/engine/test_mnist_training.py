"""Real MNIST on the tensor engine: one epoch in the suite reaches >= 95% test accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor, nn, optim
from gradscope.engine.mnist import load_mnist


def test_one_epoch_of_mnist_reaches_95_percent(real_mnist: Path) -> None:
    X, y = load_mnist("train", directory=real_mnist, download=False)
    Xt, yt = load_mnist("test", directory=real_mnist, download=False)
    engine.manual_seed(0)
    model = nn.MLP([784, 256, 128, 10])
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = np.random.default_rng(0).permutation(len(X))
    losses = []
    for i in range(0, len(X), 64):
        idx = order[i : i + 64]
        loss = F.cross_entropy(model(Tensor(X[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with engine.no_grad():
        accuracy = float((model(Tensor(Xt)).data.argmax(axis=1) == yt).mean())
    assert np.mean(losses[:20]) > 1.0 > np.mean(losses[-100:])
    assert accuracy >= 0.95, accuracy
