"""engine.scalar: the articles' numbers, every op's gradient, and clear errors."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from gradscope.engine import Value
from gradscope.engine.scalar import MLP, Layer, Neuron, topological_order


def article_expression() -> dict[str, Value]:
    """The article's L = (a*b + c) * f, with its labels."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "L": L}


def test_article_expression_numbers() -> None:
    v = article_expression()
    v["L"].backward()
    assert v["L"].data == -8.0
    grads = {k: x.grad for k, x in v.items()}
    assert grads == {"a": 6.0, "b": -4.0, "c": -2.0, "d": -2.0, "e": -2.0, "f": 4.0, "L": 1.0}


def test_article_neuron_matches_pytorch() -> None:
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.0, label="b")
    n = x1 * w1 + x2 * w2 + b
    o = n.tanh()
    o.backward()
    assert o.data == 0.0
    assert (x1.grad, w1.grad, x2.grad, w2.grad) == (-3.0, 2.0, 1.0, 0.0)

    t = {
        k: torch.tensor(val, dtype=torch.float64, requires_grad=True)
        for k, val in {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.0}.items()
    }
    to = torch.tanh(t["x1"] * t["w1"] + t["x2"] * t["w2"] + t["b"])
    to.backward()
    assert to.item() == o.data
    for name, ours in {"x1": x1, "x2": x2, "w1": w1, "w2": w2, "b": b}.items():
        assert t[name].grad.item() == pytest.approx(ours.grad, abs=1e-15), name


def test_children_keep_call_order() -> None:
    a, b = Value(1.0, label="a"), Value(2.0, label="b")
    assert (a * b).children == (a, b)
    assert (b * a).children == (b, a)
    s = a + 3
    assert s.children[0] is a and s.children[1].data == 3.0
    assert (a * b).op == "*" and (a + b).op == "+" and (a**2).op == "**2"


def test_composites_build_the_articles_graph() -> None:
    a, b = Value(5.0), Value(2.0)
    sub = a - b  # a + (b * -1)
    assert sub.op == "+" and sub.children[1].op == "*" and sub.children[1].children[1].data == -1
    div = a / b  # a * b**-1
    assert div.op == "*" and div.children[1].op == "**-1"
    assert (-a).op == "*" and (-a).data == -5.0
    assert (sub.data, div.data) == (3.0, 2.5)
    assert ((10 - a).data, (10 / a).data, (1 + a).data, (3 * a).data) == (5.0, 2.0, 6.0, 15.0)


def test_deep_chain_backward_is_iterative() -> None:
    x = Value(0.5, label="x")
    y = x
    for _ in range(100_000):
        y = y * 1.0  # each step adds an op node and a constant: 200,001 values
    assert sys.getrecursionlimit() < 100_000
    y.backward()
    assert x.grad == 1.0
    assert len(topological_order(y)) == 200_001


def test_gradients_accumulate_and_zero() -> None:
    a = Value(3.0, label="a")
    b = a + a
    b.backward()
    assert a.grad == 2.0
    c = a * a
    c.backward()  # accumulates on top, like the articles
    assert a.grad == 2.0 + 6.0
    c.zero_grad()
    assert a.grad == 0.0 and c.grad == 0.0


def test_relu_sigmoid_exp_log_values() -> None:
    assert Value(-2.0).relu().data == 0.0 and Value(1.5).relu().data == 1.5
    assert Value(0.0).sigmoid().data == 0.5
    assert Value(-1000.0).sigmoid().data == 0.0 and Value(1000.0).sigmoid().data == 1.0
    assert Value(1.0).exp().data == math.e
    assert Value(math.e).log().data == 1.0
    assert Value(500.0).tanh().data == 1.0 and Value(-500.0).tanh().data == -1.0


@pytest.mark.parametrize("bad", ["3", None, [1.0], 1 + 2j, True])
def test_non_number_is_a_type_error_naming_it(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):
        Value(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Value(1.0) + bad  # type: ignore[operator]


def test_bad_math_raises_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"log of a non-positive value: Value 'z' = 0\.0"):
        Value(0.0, label="z").log()
    with pytest.raises(ValueError, match="non-positive"):
        Value(-1.0).log()
    with pytest.raises(TypeError, match="exponent must be an int or float"):
        Value(2.0) ** Value(3.0)  # type: ignore[operator]
    with pytest.raises(ValueError, match="fractional power"):
        Value(-8.0) ** 0.5
    with pytest.raises(ValueError, match="fractional power"):
        Value(-8.0) ** float("inf")  # not an OverflowError from int(inf)
    with pytest.raises(ZeroDivisionError, match="cannot be raised"):
        Value(1.0) / Value(0.0)
    with pytest.raises(OverflowError, match="exp"):
        Value(1000.0).exp()
    with pytest.raises(OverflowError, match="overflows"):
        Value(1e200) ** 2


def test_mlp_is_seeded_and_shaped_like_the_article() -> None:
    m1, m2, m3 = MLP(3, [4, 4, 1], seed=7), MLP(3, [4, 4, 1], seed=7), MLP(3, [4, 4, 1], seed=8)
    p1 = [p.data for p in m1.parameters()]
    assert len(p1) == 4 * 4 + 4 * 5 + 1 * 5 == 41
    assert p1 == [p.data for p in m2.parameters()]
    assert p1 != [p.data for p in m3.parameters()]
    assert all(-1.0 <= x <= 1.0 for x in p1)
    out = m1([2.0, 3.0, -1.0])
    assert isinstance(out, Value) and -1.0 < out.data < 1.0
    assert m1.parameters()[0].label == "L0.N0.w0"
    m1.zero_grad()
    assert all(p.grad == 0.0 for p in m1.parameters())


def test_neuron_and_layer_options() -> None:
    n = Neuron(2, activation="relu", seed=1)
    n.w[0].data, n.w[1].data, n.b.data = 1.0, 1.0, -5.0  # type: ignore[union-attr]
    assert n([1.0, 1.0]).data == 0.0
    lin = Neuron(2, activation="linear", bias=False, seed=1)
    assert len(lin.parameters()) == 2
    assert lin([1.0, 0.0]).data == lin.w[0].data
    assert len(Layer(3, 2, seed=0)([1.0, 2.0, 3.0])) == 2
    with pytest.raises(ValueError, match="activation"):
        Neuron(2, activation="softplus")
    with pytest.raises(ValueError, match="expects 2 inputs, got 3"):
        n([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="nin"):
        Neuron(0)
    # A one-neuron hidden layer returns a bare Value; the MLP must still chain it.
    assert isinstance(MLP(2, [1, 3, 1], seed=0)([0.5, -0.5]), Value)
