"""engine.nn.functional: fused layers and losses against finite differences and PyTorch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor

T64 = np.float64


def loss_cases(rng: np.random.Generator, n: int, c: int, reduction: str) -> dict[str, tuple]:
    """name -> (our loss on a Tensor, torch's loss on a torch tensor, input array)."""
    x = rng.normal(size=(n, c)) * 3
    reg = rng.normal(size=(n, c))
    cls = rng.integers(0, c, n)
    prob = rng.random((n, c))
    pm1 = np.where(rng.random((n, c)) < 0.5, -1.0, 1.0)
    tr = torch.from_numpy
    return {
        "mse": (
            lambda t: F.mse_loss(t, reg, reduction),
            lambda t: torch.nn.functional.mse_loss(t, tr(reg), reduction=reduction),
            x,
        ),
        "cross_entropy": (
            lambda t: F.cross_entropy(t, cls, reduction),
            lambda t: torch.nn.functional.cross_entropy(t, tr(cls), reduction=reduction),
            x,
        ),
        "bce_logits": (
            lambda t: F.binary_cross_entropy_with_logits(t, prob, reduction),
            lambda t: torch.nn.functional.binary_cross_entropy_with_logits(
                t, tr(prob), reduction=reduction
            ),
            x,
        ),
        # torch has no +1/-1 hinge for raw scores; its relu(1 - y*s) is the same function.
        "hinge": (
            lambda t: F.hinge_loss(t, pm1, reduction),
            lambda t: getattr(torch.relu(1 - tr(pm1) * t), reduction)(),
            x,
        ),
    }


NAMES = ["mse", "cross_entropy", "bce_logits", "hinge"]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", NAMES)
def test_loss_matches_pytorch_and_finite_differences(name: str, reduction: str) -> None:
    @settings(max_examples=20, deadline=None)
    @given(st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**31))
    def check(n: int, c: int, seed: int) -> None:
        ours, ref, x = loss_cases(np.random.default_rng(seed), n, c, reduction)[name]
        t = Tensor(x, requires_grad=True, dtype=T64)
        out = ours(t)
        out.backward()
        tt = torch.tensor(x, requires_grad=True)
        tout = ref(tt)
        tout.backward()
        assert out.shape == () and out.item() == pytest.approx(tout.item(), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-9, atol=1e-12)
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            hi, lo = x.copy(), x.copy()
            hi[idx] += 1e-6
            lo[idx] -= 1e-6
            with engine.no_grad():
                num[idx] = ours(Tensor(hi, dtype=T64)).item() - ours(Tensor(lo, dtype=T64)).item()
            num[idx] /= 2e-6
        np.testing.assert_allclose(t.grad, num, rtol=1e-5, atol=1e-6)

    check()


def test_cross_entropy_is_stable_for_huge_logits() -> None:
    x = Tensor([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 1.0]], requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 0]))
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(5e4, rel=1e-6)
    assert np.isfinite(x.grad).all()
    b = F.binary_cross_entropy_with_logits(Tensor([1e4, -1e4], requires_grad=True), [0.0, 1.0])
    assert b.item() == pytest.approx(1e4)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_pytorch(bias: bool) -> None:
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(2, 5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    g = rng.normal(size=(2, 5, 4))
    ts = [Tensor(a, True, T64) for a in (x, w, b)]
    out = F.linear(ts[0], ts[1], ts[2] if bias else None)
    (out * g).sum().backward()
    rs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    rout = torch.nn.functional.linear(rs[0], rs[1], rs[2] if bias else None)
    (rout * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(out.data, rout.detach().numpy(), rtol=1e-12)
    for o, r in zip(ts if bias else ts[:2], rs):
        np.testing.assert_allclose(o.grad, r.grad.numpy(), rtol=1e-10, atol=1e-12)
    if not bias:
        assert ts[2].grad is None


LossFn = Callable[..., Tensor]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: F.cross_entropy(Tensor(np.zeros((2, 3))), [0, 3]), "out of range"),
        (lambda: F.cross_entropy(Tensor(np.zeros((2, 3))), [0.5, 1.0]), "integer class"),
        (lambda: F.cross_entropy(Tensor(np.zeros((2, 3))), [0, 1, 2]), "2 integer class"),
        (lambda: F.cross_entropy(Tensor(np.zeros(3)), [0]), "expects \\(N, C\\)"),
        (lambda: F.mse_loss(Tensor(np.zeros((2, 1))), np.zeros(2)), "does not match"),
        (lambda: F.hinge_loss(Tensor(np.zeros(2)), [1.0, 0.0]), "\\+1 or -1"),
        (lambda: F.mse_loss(Tensor(np.zeros(2)), np.zeros(2), reduction="avg"), "reduction"),
    ],
)
def test_bad_loss_inputs_are_named(call: Callable[[], Tensor], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
