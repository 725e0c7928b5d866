"""The two source articles as runnable, steppable examples (tests use them; presets will).

(a) "napkin": one linear neuron, no bias, learns to average the four pixels of random
    2x2 rectangles by full-batch gradient descent on MSE; its weights walk to 0.25.
(b) "micrograd": the tiny classifier, MLP(3, [4, 4, 1]) with tanh on four samples,
    summed squared error, plain gradient descent.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gradscope.engine.scalar import MLP, Module, Neuron, Value

NAPKIN_START_WEIGHTS = (0.98, 0.4, 0.86, -0.08)
TINY_XS = ((2.0, 3.0, -1.0), (3.0, -1.0, 0.5), (0.5, 1.0, 1.0), (1.0, 1.0, -1.0))
TINY_YS = (1.0, -1.0, -1.0, 1.0)
TINY_SEED = 1


def rectangles(n: int = 1000, seed: int = 0) -> tuple[list[list[float]], list[float]]:
    """n random 2x2 pixel rectangles (flattened, values in [0, 1)) and their averages."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = random.Random(seed)
    xs = [[rng.random() for _ in range(4)] for _ in range(n)]
    return xs, [sum(x) / 4 for x in xs]


class Example:
    """A model, its data and its loss; `step()` is one gradient-descent update."""

    model: Module
    lr: float

    def __init__(self) -> None:
        self.steps = 0
        self.last_loss: Value | None = None

    def loss(self) -> Value:
        raise NotImplementedError

    def step(self) -> float:
        """Forward, zero the grads, backward, update: the articles' loop body. Returns the loss."""
        loss = self.loss()
        params = self.model.parameters()
        for p in params:
            p.grad = 0.0
        loss.backward()
        for p in params:
            p.data += -self.lr * p.grad
        self.steps += 1
        self.last_loss = loss
        return loss.data

    def train(self, steps: int) -> list[float]:
        """Run `steps` updates and return the loss before each one."""
        return [self.step() for _ in range(steps)]


class NapkinAverage(Example):
    """The first article: a linear neuron learning the average of 2x2 pixel rectangles."""

    def __init__(
        self,
        n: int = 1000,
        lr: float = 0.1,
        seed: int = 0,
        weights: Sequence[float] = NAPKIN_START_WEIGHTS,
    ) -> None:
        super().__init__()
        if len(weights) != 4:
            raise ValueError(f"the averaging neuron has 4 weights, got {len(weights)}")
        self.xs, self.ys = rectangles(n, seed)
        self.lr = lr
        self.model = Neuron(4, activation="linear", bias=False)
        for i, (p, w) in enumerate(zip(self.model.w, weights)):
            p.data = float(w)
            p.label = f"w{i}"

    def predict(self, x: Sequence[float]) -> Value:
        """The neuron's output: the weighted sum of the four pixels."""
        return self.model(x)

    def loss(self) -> Value:
        """Mean squared error over the whole data set."""
        n = len(self.xs)
        total = sum((self.model(x) - y) ** 2 for x, y in zip(self.xs, self.ys))
        loss = total * (1.0 / n)
        loss.label = "loss"
        return loss

    @property
    def weights(self) -> list[float]:
        return [p.data for p in self.model.w]


class TinyClassifier(Example):
    """The second article: MLP(3, [4, 4, 1]) with tanh fitting four samples to +-1."""

    def __init__(self, lr: float = 0.1, seed: int = TINY_SEED) -> None:
        super().__init__()
        self.xs = [list(x) for x in TINY_XS]
        self.ys = list(TINY_YS)
        self.lr = lr
        self.model = MLP(3, [4, 4, 1], activation="tanh", seed=seed)

    def predictions(self) -> list[Value]:
        """The network's output for each of the four samples."""
        return [self.model(x) for x in self.xs]

    def loss(self) -> Value:
        """Summed squared error, written as in the article."""
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(self.ys, self.predictions()))
        loss.label = "loss"
        return loss
