"""The engine's fast paths give the same answers as the plain ones (and as PyTorch):
BLAS axpy in SGD, the fused cross-entropy gradient, the leaf-skipping backward walk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor, blas, nn, optim
from gradscope.engine.autograd import backward_order, topological_order

needs_blas = pytest.mark.skipif(not blas.available(), reason="numpy's BLAS has no axpy here")


# -- engine.blas.axpy --------------------------------------------------------------------


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_axpy_matches_numpy(dtype: type, order: str) -> None:
    rng = np.random.default_rng(0)
    x = np.asarray(rng.normal(size=(400, 200)), dtype=dtype, order=order)
    y = np.asarray(rng.normal(size=(400, 200)), dtype=dtype, order=order)
    want = y - dtype(0.1) * x
    assert blas.axpy(-0.1, x, y)
    np.testing.assert_allclose(y, want, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)


def test_axpy_declines_what_it_cannot_do_and_leaves_y_alone() -> None:
    big = (blas.MIN_SIZE // 100 + 1, 100)
    x = np.ones(big, np.float32)
    cases = [
        (np.ones((4, 4), np.float32), np.ones((4, 4), np.float32)),  # too small to pay
        (x.astype(np.float64), np.zeros(big, np.float32)),  # dtypes differ
        (np.asfortranarray(x), np.zeros(big, np.float32)),  # layouts differ
        (np.ones((big[0], 200), np.float32)[:, ::2], np.zeros(big, np.float32)),  # strided
        (x, np.zeros(big, np.int32)),  # not a float array
    ]
    for a, b in cases:
        before = b.copy()
        assert not blas.axpy(-1.0, a, b)
        np.testing.assert_array_equal(b, before)
    frozen = np.zeros(big, np.float32)
    frozen.flags.writeable = False
    assert not blas.axpy(-1.0, x, frozen)
    buf = np.zeros(2 * x.size, np.float32)
    assert not blas.axpy(-1.0, buf[: x.size], buf[x.size // 2 : x.size // 2 + x.size])


# -- SGD: BLAS and numpy paths, and PyTorch ----------------------------------------------


def _sgd_run(monkeypatch: pytest.MonkeyPatch, use_blas: bool, steps: int = 3) -> list[np.ndarray]:
    done = []
    if use_blas:
        axpy = blas.axpy
        monkeypatch.setattr(blas, "axpy", lambda *a: done.append(axpy(*a)) or done[-1])
    else:
        monkeypatch.setattr(blas, "_AXPY", {})
    engine.manual_seed(3)
    model = nn.MLP([700, 100, 10])  # a 100x700 weight: above blas.MIN_SIZE
    opt = optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(32, 700)).astype(np.float32), rng.integers(0, 10, 32)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()
    monkeypatch.undo()
    if use_blas and blas.available():
        assert done == [True] * steps  # the big weight went through BLAS every step
    return [p.data.copy() for p in model.parameters()]


def test_sgd_blas_and_numpy_updates_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, plain = _sgd_run(monkeypatch, True), _sgd_run(monkeypatch, False)
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mlp_training_follows_pytorch_in_float32() -> None:
    engine.manual_seed(5)
    model = nn.MLP([600, 128, 64, 10])  # the first weight takes the BLAS path
    params = [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]
    opt, ref = optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(params, lr=0.1)
    rng = np.random.default_rng(6)
    for _ in range(5):
        x = rng.random((64, 600), dtype=np.float32)
        y = rng.integers(0, 10, 64)
        loss = F.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        h = torch.from_numpy(x)
        for k in range(0, len(params), 2):
            h = h @ params[k].T + params[k + 1]
            h = torch.relu(h) if k < len(params) - 2 else h
        rloss = torch.nn.functional.cross_entropy(h, torch.from_numpy(y))
        ref.zero_grad()
        rloss.backward()
        ref.step()
        assert loss.item() == pytest.approx(rloss.item(), rel=1e-5)
    for p, r in zip(model.parameters(), params):
        np.testing.assert_allclose(p.data, r.detach().numpy(), rtol=1e-4, atol=1e-6)


# -- cross-entropy: the gradient made in the forward ---------------------------------------


@pytest.mark.parametrize("c", [10, 100])  # below and above the column-major row-max cutoff
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradient_under_any_upstream_gradient(c: int, reduction: str) -> None:
    rng = np.random.default_rng(c)
    x, y = rng.normal(size=(50, c)) * 4, rng.integers(0, c, 50)
    t = Tensor(x, requires_grad=True, dtype=np.float64)
    (F.cross_entropy(t, y, reduction) * 3.0).backward()
    tt = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.cross_entropy(tt, torch.from_numpy(y), reduction=reduction) * 3).backward()
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_cross_entropy_gradient_handed_out_is_never_written_again() -> None:
    rng = np.random.default_rng(7)
    t = Tensor(rng.normal(size=(8, 5)), requires_grad=True, dtype=np.float64)
    loss = F.cross_entropy(t, rng.integers(0, 5, 8))
    loss.backward()
    first, once = t.grad, t.grad.copy()
    loss.backward()  # a second backward adds once more, as torch's retain_graph=True does
    np.testing.assert_allclose(t.grad, 2 * once, rtol=1e-15)
    np.testing.assert_array_equal(first, once)
    t.grad = None
    loss.grad = None
    loss.backward()
    np.testing.assert_array_equal(t.grad, once)


def test_cross_entropy_without_grad_records_nothing() -> None:
    x, y = np.zeros((4, 3)), np.array([0, 1, 2, 0])
    with engine.no_grad():
        out = F.cross_entropy(Tensor(x, requires_grad=True), y)
    assert out._ctx is None and out._backward is None
    assert F.cross_entropy(Tensor(x), y)._ctx is None  # no operand needs grad
    assert F.cross_entropy(Tensor(x), y).item() == pytest.approx(np.log(3))


def test_cross_entropy_on_an_empty_batch_is_nan_with_an_empty_gradient() -> None:
    t = Tensor(np.zeros((0, 3)), requires_grad=True)
    with np.errstate(invalid="ignore"):
        loss = F.cross_entropy(t, np.zeros(0, np.int64))
    assert np.isnan(loss.item())
    loss.backward()
    assert t.grad.shape == (0, 3)


# -- backward's walk ------------------------------------------------------------------------


def test_backward_order_is_the_topological_order_without_leaves() -> None:
    engine.manual_seed(8)
    model = nn.MLP([3, 4, 4, 2])
    x = Tensor(np.ones((5, 3)))
    h = model(x)
    loss = F.cross_entropy(h, np.array([0, 1, 0, 1, 1])) + (h * h).mean()  # shared node
    want = [v for v in topological_order(loss) if v._backward is not None]
    assert backward_order(loss) == want
    leaf = Tensor([1.0], requires_grad=True)
    assert backward_order(leaf) == [leaf]
