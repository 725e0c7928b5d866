"""Every scalar op's gradient against central finite differences and against PyTorch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradscope.engine import Value

Fn = Callable[[Sequence], object]


@dataclass(frozen=True)
class Op:
    ours: Fn  # on Values (and used with plain floats for finite differences)
    ref: Fn  # on float64 torch tensors
    domain: st.SearchStrategy  # a tuple of inputs where the op is smooth


def real(lo: float = -3.0, hi: float = 3.0) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def away_from_zero(lo: float = 0.2, hi: float = 3.0) -> st.SearchStrategy[float]:
    return st.one_of(real(lo, hi), real(-hi, -lo))


pair = st.tuples(real(), real())
OPS: dict[str, Op] = {
    "add": Op(lambda v: v[0] + v[1], lambda t: t[0] + t[1], pair),
    "radd": Op(lambda v: 1.5 + v[0], lambda t: 1.5 + t[0], st.tuples(real())),
    "sub": Op(lambda v: v[0] - v[1], lambda t: t[0] - t[1], pair),
    "rsub": Op(lambda v: 2.0 - v[0], lambda t: 2.0 - t[0], st.tuples(real())),
    "mul": Op(lambda v: v[0] * v[1], lambda t: t[0] * t[1], pair),
    "rmul": Op(lambda v: -2.5 * v[0], lambda t: -2.5 * t[0], st.tuples(real())),
    "div": Op(lambda v: v[0] / v[1], lambda t: t[0] / t[1], st.tuples(real(), away_from_zero())),
    "rdiv": Op(lambda v: 3.0 / v[0], lambda t: 3.0 / t[0], st.tuples(away_from_zero())),
    "neg": Op(lambda v: -v[0], lambda t: -t[0], st.tuples(real())),
    "pow2": Op(lambda v: v[0] ** 2, lambda t: t[0] ** 2, st.tuples(real())),
    "pow3": Op(lambda v: v[0] ** 3, lambda t: t[0] ** 3, st.tuples(real())),
    "pow-1": Op(lambda v: v[0] ** -1, lambda t: t[0] ** -1, st.tuples(away_from_zero())),
    "pow0.5": Op(lambda v: v[0] ** 0.5, lambda t: t[0] ** 0.5, st.tuples(real(0.1, 5.0))),
    "pow-1.5": Op(lambda v: v[0] ** -1.5, lambda t: t[0] ** -1.5, st.tuples(real(0.2, 5.0))),
    "tanh": Op(lambda v: v[0].tanh(), lambda t: t[0].tanh(), st.tuples(real(-25, 25))),
    "relu": Op(lambda v: v[0].relu(), lambda t: t[0].relu(), st.tuples(away_from_zero(0.01))),
    "sigmoid": Op(lambda v: v[0].sigmoid(), lambda t: t[0].sigmoid(), st.tuples(real(-30, 30))),
    "exp": Op(lambda v: v[0].exp(), lambda t: t[0].exp(), st.tuples(real(-5, 5))),
    "log": Op(lambda v: v[0].log(), lambda t: t[0].log(), st.tuples(real(0.05, 50))),
    # Reuses inputs, so gradients must accumulate through several paths.
    "composite": Op(
        lambda v: (
            ((v[0] * v[1] + v[0].tanh()) * (v[1] - v[0]) / (v[0].exp() + 1)).sigmoid()
            + (v[1] ** 2 + 1).log() * v[0].relu()
        ),
        lambda t: (
            ((t[0] * t[1] + t[0].tanh()) * (t[1] - t[0]) / (t[0].exp() + 1)).sigmoid()
            + (t[1] ** 2 + 1).log() * t[0].relu()
        ),
        st.tuples(away_from_zero(0.05, 2.0), real(-2.0, 2.0)),
    ),
}


def grads(op: Op, xs: Sequence[float]) -> tuple[float, list[float]]:
    vs = [Value(x) for x in xs]
    out = op.ours(vs)
    assert isinstance(out, Value)
    out.backward()
    return out.data, [v.grad for v in vs]


def value_at(op: Op, xs: Sequence[float]) -> float:
    out = op.ours([Value(x) for x in xs])
    assert isinstance(out, Value)
    return out.data


@pytest.mark.parametrize("name", sorted(OPS))
def test_gradient_matches_finite_differences(name: str) -> None:
    op = OPS[name]

    @settings(max_examples=60, deadline=None)
    @given(op.domain)
    def check(xs: tuple[float, ...]) -> None:
        _, g = grads(op, xs)
        for i in range(len(xs)):
            h = 1e-6 * max(1.0, abs(xs[i]))
            hi = [*xs[:i], xs[i] + h, *xs[i + 1 :]]
            lo = [*xs[:i], xs[i] - h, *xs[i + 1 :]]
            numeric = (value_at(op, hi) - value_at(op, lo)) / (2 * h)
            assert g[i] == pytest.approx(numeric, rel=1e-4, abs=1e-5), (name, xs, i)

    check()


@pytest.mark.parametrize("name", sorted(OPS))
def test_value_and_gradient_match_pytorch(name: str) -> None:
    op = OPS[name]

    @settings(max_examples=60, deadline=None)
    @given(op.domain)
    def check(xs: tuple[float, ...]) -> None:
        data, g = grads(op, xs)
        ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
        out = op.ref(ts)
        out.backward()  # type: ignore[attr-defined]
        assert data == pytest.approx(out.item(), rel=1e-12, abs=1e-14), (name, xs)  # type: ignore[attr-defined]
        for i, t in enumerate(ts):
            assert g[i] == pytest.approx(t.grad.item(), rel=1e-9, abs=1e-12), (name, xs, i)

    check()
