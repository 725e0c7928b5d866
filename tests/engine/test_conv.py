"""engine.conv and engine.norm against PyTorch in float64, on random configurations.

Each family (conv2d, max_pool2d, avg_pool2d, batch_norm in training and evaluation) runs
on CONFIGS configurations drawn from a seeded generator: shapes, strides, padding,
dilation, groups, ceil_mode and the rest. Forward values and every gradient (input,
weight, bias, BatchNorm's scale and shift) must match torch's, and so must the running
statistics; a configuration torch refuses must raise a ValueError here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor

CONFIGS = 260
TOL = {"rtol": 1e-9, "atol": 1e-11}


def _leaf(a: np.ndarray) -> tuple[Tensor, torch.Tensor]:
    return Tensor(a, requires_grad=True, dtype=np.float64), torch.tensor(a, requires_grad=True)


def _compare(
    ours: Callable[[list[Tensor]], Tensor],
    ref: Callable[[list[torch.Tensor]], torch.Tensor],
    arrays: list[np.ndarray],
    rng: np.random.Generator,
) -> bool:
    """Run both on the same leaves; check outputs and every leaf's gradient.

    Returns False (after checking that ours raises ValueError too) when torch refuses.
    """
    pairs = [_leaf(a) for a in arrays]
    try:
        expected = ref([t for _, t in pairs])
    except (RuntimeError, ValueError):
        with pytest.raises(ValueError):
            ours([o for o, _ in pairs])
        return False
    got = ours([o for o, _ in pairs])
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got.data, expected.detach().numpy(), **TOL)
    upstream = rng.normal(size=got.shape)
    got.backward(upstream)
    expected.backward(torch.from_numpy(upstream))
    for i, (o, t) in enumerate(pairs):
        assert o.grad is not None and o.grad.shape == o.shape, f"operand {i}"
        np.testing.assert_allclose(o.grad, t.grad.numpy(), **TOL, err_msg=f"operand {i}")
    return True


def _values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values, or now and then a few small integers: ties for max pool to break."""
    if rng.random() < 0.25:
        return rng.integers(-2, 3, shape).astype(np.float64)
    return rng.normal(size=shape)


def _conv_case(rng: np.random.Generator) -> tuple[dict[str, Any], list[np.ndarray]]:
    groups = int(rng.choice([1, 1, 2, 3]))
    c, o = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kh, kw = (int(k) for k in rng.integers(1, 5, 2))
    sh, sw = (int(s) for s in rng.integers(1, 4, 2))
    dh, dw = (int(d) for d in rng.integers(1, 3, 2))
    ph, pw = (int(p) for p in rng.integers(0, 3, 2))
    padding: Any = (ph, pw)
    if rng.random() < 0.1:
        padding, ph, pw, sh, sw = "same", kh, kw, 1, 1  # 'same' needs stride 1
    # Sizes from just under the dilated kernel (torch refuses those) to a bit above.
    h = max(1, dh * (kh - 1) + 1 - 2 * ph + int(rng.integers(-1, 5)))
    w = max(1, dw * (kw - 1) + 1 - 2 * pw + int(rng.integers(-1, 5)))
    kwargs = {"stride": (sh, sw), "padding": padding, "dilation": (dh, dw), "groups": groups}
    arrays = [
        rng.normal(size=(int(rng.integers(1, 4)), c, h, w)),
        rng.normal(size=(o, c // groups, kh, kw)),
    ]
    if rng.random() < 0.7:
        arrays.append(rng.normal(size=o))
    return kwargs, arrays


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on its own speed
def test_conv2d_matches_torch_on_random_configurations() -> None:
    rng = np.random.default_rng(2024)
    ran = 0
    for _ in range(CONFIGS):
        kw, arrays = _conv_case(rng)
        ran += _compare(
            lambda v, kw=kw: F.conv2d(*v, **kw),
            lambda t, kw=kw: TF.conv2d(*t, **kw),
            arrays,
            rng,
        )
    assert ran >= 200  # the refusals are checked too, but most configurations must run


def _pool_case(rng: np.random.Generator, dilation: bool) -> tuple[dict[str, Any], np.ndarray]:
    kh, kw = (int(k) for k in rng.integers(1, 4, 2))
    stride = None if rng.random() < 0.3 else tuple(int(s) for s in rng.integers(1, 4, 2))
    ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if dilation else (1, 1)
    h = max(1, d[0] * (kh - 1) + 1 - 2 * ph + int(rng.integers(-1, 5)))
    w = max(1, d[1] * (kw - 1) + 1 - 2 * pw + int(rng.integers(-1, 5)))
    kwargs: dict[str, Any] = {
        "kernel_size": (kh, kw),
        "stride": stride,
        "padding": (ph, pw),
        "ceil_mode": bool(rng.random() < 0.4),
    }
    if dilation:
        kwargs["dilation"] = d
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), h, w)
    return kwargs, _values(rng, shape)


def _reads_only_padding(x: np.ndarray, kw: dict[str, Any]) -> bool:
    """Does some dilated window read nothing but padding (an output of -inf)?

    torch's kernel then scatters that window's gradient past the input's memory (heap
    corruption), so there is nothing to compare such a configuration with.
    """
    try:
        return bool(np.isinf(F.max_pool2d(Tensor(x), **kw).data).any())
    except ValueError:
        return False  # a refused configuration: _compare checks that torch refuses it too


def test_max_pool2d_matches_torch_on_random_configurations() -> None:
    rng = np.random.default_rng(7)
    ran = 0
    for _ in range(CONFIGS):
        kw, x = _pool_case(rng, dilation=True)
        if _reads_only_padding(x, kw):
            continue
        ran += _compare(
            lambda v, kw=kw: F.max_pool2d(v[0], **kw),
            lambda t, kw=kw: TF.max_pool2d(t[0], **kw),
            [x],
            rng,
        )
    assert ran >= 200


def test_avg_pool2d_matches_torch_on_random_configurations() -> None:
    rng = np.random.default_rng(11)
    ran = 0
    for _ in range(CONFIGS):
        kw, x = _pool_case(rng, dilation=False)
        kw["count_include_pad"] = bool(rng.random() < 0.5)
        if rng.random() < 0.15:
            kw["divisor_override"] = int(rng.integers(1, 5))
        ran += _compare(
            lambda v, kw=kw: F.avg_pool2d(v[0], **kw),
            lambda t, kw=kw: TF.avg_pool2d(t[0], **kw),
            [x],
            rng,
        )
    assert ran >= 200


def test_max_pool2d_without_grad_matches_torch() -> None:
    """The no-grad forward (no argmax kept, as in evaluation) gives the same values."""
    rng = np.random.default_rng(8)
    for _ in range(30):
        kw, x = _pool_case(rng, dilation=True)
        if _reads_only_padding(x, kw):
            continue
        try:
            expected = TF.max_pool2d(torch.tensor(x), **kw).numpy()
        except RuntimeError:
            continue
        with engine.no_grad():
            got = F.max_pool2d(Tensor(x, requires_grad=True), **kw)
        np.testing.assert_array_equal(got.data, expected)


def test_max_pool2d_propagates_nan_like_torch() -> None:
    x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 1, 0] = x[0, 0, 0, 1] = x[0, 1, 3, 3] = np.nan
    ours, theirs = _leaf(x)
    got, expected = F.max_pool2d(ours, 2), TF.max_pool2d(theirs, 2)
    np.testing.assert_array_equal(got.data, expected.detach().numpy())  # NaN == NaN here
    got.backward(np.ones(got.shape))
    expected.backward(torch.ones(expected.shape, dtype=torch.float64))
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch_on_random_configurations(training: bool) -> None:
    rng = np.random.default_rng(3 + training)
    ran = 0
    for _ in range(CONFIGS):
        c = int(rng.integers(1, 5))
        shape = (int(rng.integers(1, 4)), c, *(int(s) for s in rng.integers(1, 4, 2)))
        if rng.random() < 0.15:
            shape = shape[:2]  # (N, C): BatchNorm1d's case, the same function in torch
        affine = bool(rng.random() < 0.8)
        momentum, eps = float(rng.uniform(0.01, 0.9)), float(rng.choice([1e-5, 1e-3, 0.1]))
        stats = [rng.normal(size=c), rng.uniform(0.5, 2.0, c)]
        ours_stats = [s.copy() for s in stats]
        ref_stats = [torch.tensor(s) for s in stats]
        arrays = [rng.normal(size=shape) * 2 + 1]
        if affine:
            arrays += [rng.normal(size=c), rng.normal(size=c)]

        def ours(
            v: list[Tensor], st: list = ours_stats, m: float = momentum, e: float = eps
        ) -> Tensor:
            return F.batch_norm(v[0], *st, *v[1:], training=training, momentum=m, eps=e)

        def ref(
            t: list[torch.Tensor], st: list = ref_stats, m: float = momentum, e: float = eps
        ) -> torch.Tensor:
            return TF.batch_norm(t[0], *st, *t[1:], training=training, momentum=m, eps=e)

        if _compare(ours, ref, arrays, rng):
            ran += 1
            for mine, theirs in zip(ours_stats, ref_stats):
                np.testing.assert_allclose(mine, theirs.numpy(), **TOL)
    assert ran >= 200


@pytest.mark.parametrize("op", ["conv2d", "max_pool2d", "avg_pool2d", "batch_norm"])
def test_float32_in_float32_out_and_close_to_torch(op: str) -> None:
    """The fast path: float32 stays float32 (outputs and grads) and agrees with torch's."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6, 12, 12)).astype(np.float32)
    extra = {
        "conv2d": [rng.normal(size=(8, 3, 3, 3)), rng.normal(size=8)],
        "batch_norm": [rng.normal(size=6), rng.normal(size=6)],
    }.get(op, [])
    arrays = [x, *(a.astype(np.float32) for a in extra)]
    ours_in = [Tensor(a, requires_grad=True) for a in arrays]
    ref_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    call: dict[str, tuple[Callable, Callable]] = {
        "conv2d": (
            lambda v: F.conv2d(*v, padding=1, groups=2),
            lambda t: TF.conv2d(*t, padding=1, groups=2),
        ),
        "max_pool2d": (
            lambda v: F.max_pool2d(v[0], 3, 2, 1),
            lambda t: TF.max_pool2d(t[0], 3, 2, 1),
        ),
        "avg_pool2d": (lambda v: F.avg_pool2d(v[0], 2), lambda t: TF.avg_pool2d(t[0], 2)),
        "batch_norm": (
            lambda v: F.batch_norm(v[0], None, None, *v[1:], training=True),
            lambda t: TF.batch_norm(t[0], None, None, *t[1:], training=True),
        ),
    }
    got, expected = call[op][0](ours_in), call[op][1](ref_in)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.data, expected.detach().numpy(), rtol=1e-4, atol=1e-4)
    upstream = rng.normal(size=got.shape).astype(np.float32)
    got.backward(upstream)
    expected.backward(torch.from_numpy(upstream))
    for o, t in zip(ours_in, ref_in):
        assert o.grad.dtype == np.float32
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=1e-3, atol=1e-3)
