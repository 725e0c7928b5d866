"""engine.tensor: every op's gradient against finite differences and against PyTorch.

Hypothesis draws shapes (broadcasting included) and values; each check reduces the op's
output against random weights, so the upstream gradient is not all ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradscope import engine
from gradscope.engine import Tensor

Fn = Callable[[Sequence], object]


@dataclass(frozen=True)
class Case:
    ours: Fn
    ref: Fn
    lo: float = -2.0
    hi: float = 2.0
    arity: int = 1
    min_dims: int = 0


CASES: dict[str, Case] = {
    "add": Case(lambda v: v[0] + v[1], lambda t: t[0] + t[1], arity=2),
    "sub": Case(lambda v: v[0] - v[1], lambda t: t[0] - t[1], arity=2),
    "mul": Case(lambda v: v[0] * v[1], lambda t: t[0] * t[1], arity=2),
    "div": Case(lambda v: v[0] / v[1], lambda t: t[0] / t[1], 0.5, 2.0, arity=2),
    "pow_tensor": Case(lambda v: v[0] ** v[1], lambda t: t[0] ** t[1], 0.5, 2.0, arity=2),
    "radd_rsub_rmul_rdiv": Case(
        lambda v: (1.5 + v[0]) * (2.0 - v[0]) + 3.0 / v[0] - 2 * v[0],
        lambda t: (1.5 + t[0]) * (2.0 - t[0]) + 3.0 / t[0] - 2 * t[0],
        0.5,
        2.0,
    ),
    "pow": Case(lambda v: v[0] ** 3, lambda t: t[0] ** 3),
    "pow_frac": Case(lambda v: v[0] ** -1.5, lambda t: t[0] ** -1.5, 0.3, 2.0),
    "neg": Case(lambda v: -v[0], lambda t: -t[0]),
    "exp": Case(lambda v: v[0].exp(), lambda t: t[0].exp()),
    "log": Case(lambda v: v[0].log(), lambda t: t[0].log(), 0.1, 3.0),
    "tanh": Case(lambda v: v[0].tanh(), lambda t: t[0].tanh(), -4, 4),
    "relu": Case(lambda v: v[0].relu(), lambda t: t[0].relu()),
    "sigmoid": Case(lambda v: v[0].sigmoid(), lambda t: t[0].sigmoid(), -6, 6),
    "sum": Case(lambda v: v[0].sum(), lambda t: t[0].sum()),
    "sum_dim": Case(
        lambda v: v[0].sum(-1, keepdim=True), lambda t: t[0].sum(-1, keepdim=True), min_dims=1
    ),
    "sum_dim0": Case(lambda v: v[0].sum(0), lambda t: t[0].sum(0), min_dims=1),
    "mean": Case(lambda v: v[0].mean(), lambda t: t[0].mean()),
    "mean_dim": Case(lambda v: v[0].mean(0), lambda t: t[0].mean(0), min_dims=1),
    "max": Case(lambda v: v[0].max(), lambda t: t[0].amax()),
    "max_dim": Case(lambda v: v[0].max(-1), lambda t: t[0].amax(-1), min_dims=1),
    "softmax": Case(lambda v: v[0].softmax(-1), lambda t: t[0].softmax(-1), -3, 3, min_dims=1),
    "log_softmax": Case(
        lambda v: v[0].log_softmax(0), lambda t: t[0].log_softmax(0), -3, 3, min_dims=1
    ),
    "reshape": Case(lambda v: v[0].reshape(-1), lambda t: t[0].reshape(-1)),
    "transpose": Case(lambda v: v[0].transpose(0, -1), lambda t: t[0].transpose(0, -1), min_dims=1),
    "T": Case(
        lambda v: v[0].T * 1.0,
        lambda t: t[0].permute(*reversed(range(t[0].ndim))) * 1.0,
        min_dims=1,
    ),
    "index_basic": Case(lambda v: v[0][..., :1], lambda t: t[0][..., :1], min_dims=1),
    "index_fancy": Case(
        lambda v: v[0][np.array([0, 0, -1])], lambda t: t[0][[0, 0, -1]], min_dims=1
    ),
    "concat": Case(
        lambda v: engine.cat([v[0], v[0] * 2.0], dim=0),
        lambda t: torch.cat([t[0], t[0] * 2.0], dim=0),
        min_dims=1,
    ),
    "composite": Case(
        lambda v: ((v[0] * v[1]).tanh() + v[0].exp() / (v[1] ** 2 + 1)).sigmoid(),
        lambda t: ((t[0] * t[1]).tanh() + t[0].exp() / (t[1] ** 2 + 1)).sigmoid(),
        arity=2,
    ),
}


@st.composite
def inputs(draw: st.DrawFn, case: Case) -> list[np.ndarray]:
    if case.arity == 2:
        shapes = draw(
            hnp.mutually_broadcastable_shapes(
                num_shapes=2, min_dims=case.min_dims, max_dims=3, max_side=3
            )
        ).input_shapes
    else:
        shapes = [draw(hnp.array_shapes(min_dims=case.min_dims, max_dims=3, max_side=3))]
    elems = st.floats(case.lo, case.hi, allow_nan=False, allow_infinity=False)
    arrays = [draw(hnp.arrays(np.float64, s, elements=elems)) for s in shapes]
    # Keep relu and max away from their kinks, where a finite difference is meaningless.
    for a in arrays:
        a[np.abs(a) < 0.05] = 0.3
    return arrays


def _run(case: Case, arrays: list[np.ndarray], weights: np.ndarray | None = None):
    ts = [Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    out = case.ours(ts)
    assert isinstance(out, Tensor)
    w = weights if weights is not None else np.cos(np.arange(out.size) + 1.0).reshape(out.shape)
    (out * w).sum().backward()
    return out, ts, w


def _has_ties(case: Case, arrays: list[np.ndarray]) -> bool:
    return case in (CASES["max"], CASES["max_dim"]) and len(np.unique(arrays[0])) < arrays[0].size


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name: str) -> None:
    case = CASES[name]

    @settings(max_examples=25, deadline=None)
    @given(inputs(case))
    def check(arrays: list[np.ndarray]) -> None:
        if _has_ties(case, arrays):
            return  # a max with ties has no derivative
        _, ts, w = _run(case, arrays)

        def f(xs: list[np.ndarray]) -> float:
            with engine.no_grad():
                return float((case.ours([Tensor(x, dtype=np.float64) for x in xs]).data * w).sum())

        for k, a in enumerate(arrays):
            num = np.zeros_like(a)
            for idx in np.ndindex(a.shape):
                hi = [x.copy() for x in arrays]
                lo = [x.copy() for x in arrays]
                hi[k][idx] += 1e-6
                lo[k][idx] -= 1e-6
                num[idx] = (f(hi) - f(lo)) / 2e-6
            assert ts[k].grad is not None and ts[k].grad.shape == a.shape
            np.testing.assert_allclose(ts[k].grad, num, rtol=1e-5, atol=1e-6, err_msg=name)

    check()


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_gradient_match_pytorch(name: str) -> None:
    case = CASES[name]

    @settings(max_examples=25, deadline=None)
    @given(inputs(case))
    def check(arrays: list[np.ndarray]) -> None:
        if _has_ties(case, arrays):
            return
        out, ts, w = _run(case, arrays)
        tts = [torch.tensor(a, requires_grad=True) for a in arrays]
        tout = case.ref(tts)
        (tout * torch.from_numpy(w)).sum().backward()
        np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12, atol=1e-12)
        for ours, ref in zip(ts, tts):
            np.testing.assert_allclose(ours.grad, ref.grad.numpy(), rtol=1e-10, atol=1e-12)

    check()


@pytest.mark.parametrize(
    ("sa", "sb"),
    [
        ((3, 4), (4, 2)),
        ((2, 3, 4), (4, 5)),
        ((4,), (4, 3)),
        ((3, 4), (4,)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (4,)),
    ],
)
def test_matmul_shapes_match_pytorch(sa: tuple[int, ...], sb: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    ta, tb = Tensor(a, True, np.float64), Tensor(b, True, np.float64)
    out = ta @ tb
    w = rng.normal(size=out.shape)
    (out * w).sum().backward()
    ra, rb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ((ra @ rb) * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(out.data, (ra @ rb).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ta.grad, ra.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tb.grad, rb.grad.numpy(), rtol=1e-10, atol=1e-12)
