"""Tensor semantics against PyTorch (issue 20, item 1): repeated backward, grad dtypes,
powers at 0, integer dtypes, tuple axes, writable grads, construction copies."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradscope import engine
from gradscope.engine import Tensor, optim

FAST = settings(max_examples=15, deadline=None)
FLOATS = (np.float32, np.float64)
TORCH = {np.float32: torch.float32, np.float64: torch.float64}


def _pair(arr: np.ndarray) -> tuple[Tensor, torch.Tensor]:
    return Tensor(arr, requires_grad=True), torch.tensor(arr, requires_grad=True)


def _close(ours: np.ndarray | None, theirs: torch.Tensor | None, dtype: type) -> None:
    assert (ours is None) == (theirs is None)
    if ours is None or theirs is None:
        return
    assert ours.dtype == theirs.numpy().dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=tol, atol=tol)


# -- 1. a second backward never double-counts (the graph is kept: retain_graph=True) ----

# Each case builds (leaves..., ) -> [losses]; both libraries run backward on each loss in
# turn, `repeat` times, and must agree on every leaf's grad after every call.
Build = Callable[[Callable, list], list]


def _two_losses_one_trunk(ops: Callable, xs: list) -> list:
    x, w = xs
    h = ops.tanh(x @ w)
    return [(h * h).sum(), (h * 3.0).mean()]


def _two_heads_one_hidden(ops: Callable, xs: list) -> list:
    x, w = xs
    h = ops.relu(x @ w) + 0.5
    return [h.sum() * 2.0, (h * h).mean() + h.max()]


def _same_loss_twice(ops: Callable, xs: list) -> list:
    x, w = xs
    y = x @ w
    return [(y + y).sum()]


class _Ours:
    tanh, relu = staticmethod(Tensor.tanh), staticmethod(Tensor.relu)


class _Torch:
    tanh, relu = staticmethod(torch.tanh), staticmethod(torch.relu)


BUILDS = [_two_losses_one_trunk, _two_heads_one_hidden, _same_loss_twice]


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: b.__name__)
@FAST
@given(
    n=st.integers(1, 4),
    k=st.integers(1, 4),
    dtype=st.sampled_from(FLOATS),
    repeat=st.integers(1, 3),
    seed=st.integers(0, 99),
)
def test_repeated_backward_matches_torch(build, n, k, dtype, repeat, seed) -> None:
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(n, 3)).astype(dtype), rng.normal(size=(3, k)).astype(dtype)]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ol, tl = build(_Ours, ours), build(_Torch, theirs)
    for _ in range(repeat):
        for a, b in zip(ol, tl):
            a.backward()
            b.backward(retain_graph=True)
            for o, t in zip(ours, theirs):
                _close(o.grad, t.grad, dtype)


def test_intermediate_backward_then_loss() -> None:
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    tx = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h, th = x * 2.0, tx * 2.0
    loss, tloss = (h * h).sum(), (th * th).sum()
    h.backward(np.ones(3, np.float32))
    th.backward(torch.ones(3), retain_graph=True)
    loss.backward()
    tloss.backward()
    _close(x.grad, tx.grad, np.float32)


# -- 2. gradients keep their leaf's dtype ------------------------------------------------

MIXED: list[tuple[str, Callable, Callable]] = [
    ("max", lambda a, b: a.max(), lambda a, b: a.amax()),
    ("max_dim", lambda a, b: a.max(dim=0).sum(), lambda a, b: a.amax(dim=0).sum()),
    ("cat", lambda a, b: engine.cat([a, b]).sum(), lambda a, b: torch.cat([a, b]).sum()),
    ("concat_mul", lambda a, b: (engine.concat([a, b]) * 2.0).sum(), None),
    ("times_f64", lambda a, b: (a * b).sum(), lambda a, b: (a * b).sum()),
    ("div_f64", lambda a, b: (a / (b * b + 1.0)).sum(), lambda a, b: (a / (b * b + 1.0)).sum()),
    ("np_f64_scalar", lambda a, b: (a * np.float64(1.5)).sum(), None),
    ("np_f64_rscalar", lambda a, b: (np.float64(1.5) * a - b).sum(), None),
    ("f64_0d", lambda a, b: (a * b.sum()).sum(), lambda a, b: (a * b.sum()).sum()),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), MIXED, ids=[m[0] for m in MIXED])
@FAST
@given(n=st.integers(1, 5), seed=st.integers(0, 99), b_dtype=st.sampled_from(FLOATS))
def test_grads_keep_leaf_dtype(name, ours, theirs, n, seed, b_dtype) -> None:
    rng = np.random.default_rng(seed)
    a_arr = rng.normal(size=(n, 2)).astype(np.float32)
    b_arr = rng.normal(size=(n, 2)).astype(b_dtype)
    (a, ta), (b, tb) = _pair(a_arr), _pair(b_arr)
    ours(a, b).backward()
    assert a.grad is not None and a.grad.dtype == np.float32
    if b.grad is not None:
        assert b.grad.dtype == b_dtype
    if theirs is not None:
        out = theirs(ta, tb)
        assert ours(a, b).dtype == out.detach().numpy().dtype
        out.backward()
        _close(a.grad, ta.grad, np.float32)
        if tb.grad is not None:
            _close(b.grad, tb.grad, np.float32)


# -- 3. powers at 0 ----------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 0.0, 1, 2, 3.0, -1, 0.5])
@pytest.mark.parametrize("dtype", FLOATS)
def test_scalar_power_grad_at_zero(k, dtype) -> None:
    arr = np.array([0.0, 0.0, 1.5, 2.0], dtype=dtype)
    (x, tx) = _pair(arr)
    with np.errstate(divide="ignore", invalid="ignore"):
        (x**k).sum().backward()
    (tx**k).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6)
    assert x.grad.dtype == dtype


@FAST
@given(
    a=st.lists(st.sampled_from([0.0, 1.0, 2.5, -2.0, 0.5]), min_size=1, max_size=6),
    b=st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5, 3.0]),
    dtype=st.sampled_from(FLOATS),
)
def test_tensor_power_grads_at_zero(a, b, dtype) -> None:
    a_arr = np.array(a, dtype=dtype)
    b_arr = np.full(len(a), b, dtype=dtype)
    (x, tx), (y, ty) = _pair(a_arr), _pair(b_arr)
    (x**y).sum().backward()
    (tx**ty).sum().backward()
    for ours, theirs in ((x.grad, tx.grad), (y.grad, ty.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6, equal_nan=True)
        assert ours.dtype == dtype


def test_rpow_matches_torch() -> None:
    x, tx = _pair(np.array([0.0, 1.0, -2.0], np.float32))
    (2.0**x).sum().backward()
    (2.0**tx).sum().backward()
    _close(x.grad, tx.grad, np.float32)


# -- 4. integer dtypes -------------------------------------------------------------------

CONSTRUCT = [
    [1, 2],
    [[1, 2], [3, 4]],
    [0.5, 1.0],
    [1, 2.5],
    [True, False],
    3,
    2.5,
    np.array([1, 2], np.int32),
    np.array([1.0], np.float64),
    np.array([1, 2], np.uint8),
    np.float64(2.0),
]


@pytest.mark.parametrize("data", CONSTRUCT, ids=repr)
def test_construction_dtype_matches_torch(data) -> None:
    expect = torch.tensor(data).numpy().dtype
    assert engine.tensor(data).dtype == expect
    assert Tensor(data).dtype == expect


def _both(data: list, dtype: type) -> tuple[Tensor, torch.Tensor]:
    arr = np.array(data, dtype=dtype)
    return Tensor(arr), torch.tensor(arr)


PROMOTE: list[tuple[str, Callable]] = [
    ("int+int", lambda a, b: a + 2),
    ("int+float", lambda a, b: a + 1.5),
    ("int*float", lambda a, b: a * 0.5),
    ("int-int", lambda a, b: 3 - a),
    ("int/int", lambda a, b: a / 2),
    ("tensor int/int", lambda a, b: a / (a + 1)),
    ("int*tensor", lambda a, b: a * b),
    ("float/int", lambda a, b: b / (a + 1)),
    ("int**2", lambda a, b: a**2),
    ("int**0.5", lambda a, b: a**0.5),
    ("exp(int)", lambda a, b: a.exp()),
    ("sum(int)", lambda a, b: a.sum()),
    ("max(int)", lambda a, b: a.max()),
    ("neg", lambda a, b: -a),
    ("int*0d f64", lambda a, b: a * b.sum()),
]


@pytest.mark.parametrize(("name", "f"), PROMOTE, ids=[p[0] for p in PROMOTE])
@pytest.mark.parametrize("int_dtype", [np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("float_dtype", FLOATS)
def test_integer_promotion_matches_torch(name, f, int_dtype, float_dtype) -> None:
    (a, ta), (b, tb) = _both([1, 2, 3], int_dtype), _both([0.5, 1.5, 2.0], float_dtype)
    if name == "max(int)":
        ours, theirs = a.max(), ta.amax()
    else:
        ours, theirs = f(a, b), f(ta, tb)
    assert ours.dtype == theirs.numpy().dtype, name
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


def test_mixed_float_promotion_matches_torch() -> None:
    x32, t32 = _both([1.0, 2.0], np.float32)
    x64, t64 = _both([1.0, 2.0], np.float64)
    assert (x32 * x64).dtype == (t32 * t64).numpy().dtype == np.float64
    assert (x32 * x64.sum()).dtype == (t32 * t64.sum()).numpy().dtype == np.float32
    assert (x32.sum() * x64.sum()).dtype == np.float64
    flags, tflags = engine.tensor([True, False]), torch.tensor([True, False])
    for f in (lambda t: t * 3, lambda t: t + 1.5, lambda t: t * True, lambda t: t.sum()):
        assert f(flags).dtype == f(tflags).numpy().dtype
        np.testing.assert_array_equal(f(flags).data, f(tflags).numpy())


@FAST
@given(n=st.integers(1, 6), m=st.integers(1, 8), seed=st.integers(0, 99))
def test_integer_tensor_indexes(n, m, seed) -> None:
    rng = np.random.default_rng(seed)
    x, tx = _pair(rng.normal(size=(n, 3)))
    idx = rng.integers(0, n, m)
    i, ti = engine.tensor(idx.tolist()), torch.tensor(idx.tolist())
    assert i.dtype == np.int64
    (x[i] * 2.0).sum().backward()
    (tx[ti] * 2.0).sum().backward()
    _close(x.grad, tx.grad, np.float64)
    mask = engine.tensor((np.arange(n) % 2 == 0).tolist())
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(x[mask].data, tx[torch.tensor(mask.data)].detach().numpy())


@pytest.mark.parametrize("data", [[1, 2], np.array([1], np.int32), [True]])
def test_integer_tensor_cannot_require_grad(data) -> None:
    with pytest.raises(RuntimeError, match="floating point"):
        torch.tensor(data, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        engine.tensor(data, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        Tensor(data, requires_grad=True)


def test_mean_of_integers_raises_like_torch() -> None:
    with pytest.raises(RuntimeError, match="mean"):
        torch.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match="mean"):
        engine.tensor([1, 2]).mean()


# -- 5. reductions over a tuple of axes ---------------------------------------------------


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
@FAST
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    data=st.data(),
    keepdim=st.booleans(),
    as_list=st.booleans(),
    dtype=st.sampled_from(FLOATS),
)
def test_tuple_axes_match_torch(op, shape, data, keepdim, as_list, dtype) -> None:
    nd = len(shape)
    axes = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd))
    if len({a % nd for a in axes}) != len(axes):
        axes = sorted({a % nd for a in axes})
    dim = list(axes) if as_list else tuple(axes)
    rng = np.random.default_rng(len(shape))
    x, tx = _pair(rng.normal(size=shape).astype(dtype))
    tname = "amax" if op == "max" else op
    out = getattr(x, op)(dim=dim, keepdim=keepdim)
    tout = getattr(tx, tname)(dim=dim, keepdim=keepdim)
    _close(out.data, tout.detach(), dtype)
    w = rng.normal(size=tout.shape).astype(dtype)
    (out * w).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    _close(x.grad, tx.grad, dtype)


# -- 6. .grad is writable ----------------------------------------------------------------


def test_grad_assignment_and_in_place_clipping_feed_the_optimizer() -> None:
    w = engine.nn.Parameter(np.array([[1.0, -2.0], [3.0, 0.5]], np.float32))
    b = engine.nn.Parameter(np.array([0.1, 0.2], np.float32))
    x = Tensor(np.ones((3, 2), np.float32))
    opt = optim.SGD([w, b], lr=1.0)
    ((x @ w + b) * 10.0).sum().backward()
    w.grad *= 0.5
    np.clip(w.grad, -1, 1, out=w.grad)
    np.clip(b.grad, -2, 2, out=b.grad)  # b's grad came from a broadcast sum
    before_w, before_b = w.data.copy(), b.data.copy()
    opt.step()
    np.testing.assert_allclose(w.data, before_w - np.clip(15.0, -1, 1))
    np.testing.assert_allclose(b.data, before_b - 2.0)
    w.grad = None
    b.grad = np.full(2, 0.25, np.float32)
    opt.step()  # a None grad is skipped; an assigned one is used
    np.testing.assert_allclose(w.data, before_w - 1.0)
    np.testing.assert_allclose(b.data, before_b - 2.25)


LEAF_GRADS: list[tuple[str, Callable]] = [
    ("x+y", lambda x, y: x + y),
    ("x-y", lambda x, y: x - y),
    ("reshape", lambda x, y: (x.reshape(-1) + y.reshape(-1)).reshape(2, 2)),
    ("sum", lambda x, y: (x.sum() + y.sum()) * 1.0),
    ("T", lambda x, y: x.T + y),
]


@pytest.mark.parametrize(("name", "f"), LEAF_GRADS, ids=[c[0] for c in LEAF_GRADS])
def test_leaf_grads_are_their_own_arrays(name, f) -> None:
    x = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    y = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    out = f(x, y)
    out.backward(np.ones(out.shape, np.float32))
    expect = y.grad.copy()
    x.grad *= 0.5  # writable, and y's grad (or the graph's) is not touched
    np.testing.assert_array_equal(y.grad, expect)
    assert x.grad.flags.writeable and y.grad.flags.writeable


# -- 7. construction copies; from_numpy shares -------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_construction_copies_and_from_numpy_shares(dtype) -> None:
    arr = np.arange(4).astype(dtype)
    a, b, s = Tensor(arr), engine.tensor(arr), engine.from_numpy(arr)
    ts = torch.from_numpy(arr)
    arr[0] = 7
    assert a.data[0] == b.data[0] == 0
    assert s.data[0] == ts[0].item() == 7
    assert a.dtype == b.dtype == s.dtype == ts.numpy().dtype == dtype
    s.data[1] = 9  # writes through, both ways
    assert arr[1] == 9
    with pytest.raises(TypeError):
        engine.from_numpy([1.0, 2.0])


def test_float64_arrays_stay_float64() -> None:
    arr = np.random.default_rng(0).normal(size=(3, 2))
    assert Tensor(arr).dtype == torch.tensor(arr).numpy().dtype == np.float64
    assert Tensor(arr, dtype=np.float32).dtype == np.float32
    assert engine.nn.Parameter(arr).dtype == np.float32  # a layer's default stays float32
