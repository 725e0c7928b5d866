"""engine.examples: the two articles, reproduced; and checked against the article's own code."""

from __future__ import annotations

import importlib.util
import itertools
import random
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from gradscope.engine.examples import NapkinAverage, TinyClassifier, rectangles
from gradscope.engine.scalar import Value, topological_order

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_reference(ordered: bool) -> ModuleType:
    """A fresh copy of the article's code kept in bench/ (see its fresh_copy)."""
    spec = importlib.util.spec_from_file_location(
        "micrograd_reference", BENCH / "micrograd_reference.py"
    )
    assert spec and spec.loader
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    return ref.fresh_copy(ordered=ordered)


def test_rectangles_are_seeded_averages() -> None:
    xs, ys = rectangles(50, seed=3)
    assert len(xs) == len(ys) == 50 and all(len(x) == 4 for x in xs)
    assert all(0.0 <= p < 1.0 for x in xs for p in x)
    assert all(y == pytest.approx(sum(x) / 4) for x, y in zip(xs, ys))
    assert rectangles(50, seed=3) == (xs, ys) and rectangles(50, seed=4) != (xs, ys)
    with pytest.raises(ValueError):
        rectangles(0)


def test_napkin_neuron_learns_the_average(
    napkin_trained: tuple[NapkinAverage, list[float]],
) -> None:
    fresh = NapkinAverage()
    assert fresh.weights == [0.98, 0.4, 0.86, -0.08]
    assert fresh.predict([0.2, 0.5, 0.4, 0.7]).data == pytest.approx(0.684, abs=1e-12)
    ex, losses = napkin_trained  # NapkinAverage() after ex.train(300)
    assert len(losses) == 300
    assert all(b < a for a, b in itertools.pairwise(losses)), "full-batch GD on a convex loss"
    assert all(abs(w - 0.25) < 0.01 for w in ex.weights), ex.weights
    assert ex.predict([0.2, 0.5, 0.4, 0.7]).data == pytest.approx(0.45, abs=0.01)
    assert ex.steps == 300 and ex.last_loss is not None
    assert {v.label for v in topological_order(ex.last_loss)} >= {"w0", "w1", "w2", "w3", "loss"}


def test_napkin_gradient_is_the_closed_form() -> None:
    ex = NapkinAverage(n=20, seed=5)
    w = ex.weights
    ex.step()
    for j, p in enumerate(ex.model.w):
        expected = (
            sum(2 * (sum(wi * xi for wi, xi in zip(w, x)) - y) * x[j] for x, y in zip(ex.xs, ex.ys))
            / 20
        )
        assert p.grad == pytest.approx(expected, rel=1e-12)
        assert p.data == pytest.approx(w[j] - 0.1 * expected, rel=1e-12)


@pytest.mark.parametrize("seed", [None, 0, 2, 3])
def test_tiny_classifier_loss_below_001_within_100_steps(seed: int | None) -> None:
    ex = TinyClassifier() if seed is None else TinyClassifier(seed=seed)
    losses = ex.train(100)
    assert losses[0] > 0.5
    assert min(losses) < 0.01
    preds = [p.data for p in ex.predictions()]
    assert all((p > 0) == (y > 0) for p, y in zip(preds, ex.ys))


def test_tiny_classifier_is_the_articles_code_bit_for_bit() -> None:
    ref = load_reference(ordered=True)
    ours = TinyClassifier()
    model = ref.MLP(3, [4, 4, 1])
    for p, q in zip(model.parameters(), ours.model.parameters(), strict=True):
        p.data = q.data
    for _ in range(25):
        ypred = [model(list(x)) for x in ours.xs]
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ours.ys, ypred))
        for p in model.parameters():
            p.grad = 0.0
        loss.backward()
        for p in model.parameters():
            p.data += -0.1 * p.grad
        assert ours.step() == loss.data
    assert [p.data for p in ours.model.parameters()] == [p.data for p in model.parameters()]


def test_tiny_classifier_graph_has_the_articles_structure() -> None:
    ref = load_reference(ordered=False)
    random.seed(0)
    model = ref.MLP(3, [4, 4, 1])
    ours = TinyClassifier()
    ypred = [model(list(x)) for x in ours.xs]
    ref_loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ours.ys, ypred))

    seen, stack, ref_ops = {id(ref_loss)}, [ref_loss], Counter()
    while stack:
        v = stack.pop()
        ref_ops[v._op] += 1
        for c in v._prev:
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
    our_ops = Counter(v.op for v in topological_order(ours.loss()))
    assert our_ops == ref_ops
    assert our_ops["tanh"] == 4 * 9 and our_ops["**2"] == 4


def test_napkin_graph_is_small_and_labelled_per_sample() -> None:
    ex = NapkinAverage(n=1)
    nodes = topological_order(ex.loss())
    ops = Counter(v.op for v in nodes)
    # w.x as 4 products and 3 sums, minus y, squared, summed from 0, times 1/n.
    assert ops == Counter({"": 4 + 4 + 1 + 1 + 1, "*": 4 + 1, "+": 3 + 1 + 1, "**2": 1})
    assert isinstance(nodes[-1], Value) and nodes[-1].label == "loss"
