"""Max and average pooling over (N, C, H, W) tensors, PyTorch's semantics, forward beside
backward.

Pools treat N and C alike, so they run on whichever of (N, C) or (C, N) order the input
is laid out in (a conv's output is (C, N) in memory), one strided slice per kernel
offset: max keeps PyTorch's first-maximum index (NaN wins), avg divides like torch
(count_include_pad, ceil_mode, divisor_override).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradscope.engine.autograd import accumulate as _accumulate
from gradscope.engine.autograd import is_grad_enabled
from gradscope.engine.conv import Geom, IntPair, check_4d, out_size, pair, too_small
from gradscope.engine.tensor import Tensor, _make


def _nc_major(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """x, or x's (C, N, H, W) view when N varies faster in memory (a conv's output)."""
    return (x.transpose(1, 0, 2, 3), True) if x.strides[0] < x.strides[1] else (x, False)


def _pool_geom(
    op: str, x: Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair,
    dilation: IntPair, ceil_mode: bool,
) -> Geom:  # fmt: skip
    check_4d(op, x)
    kh, kw = pair(kernel_size, "kernel_size", 1)
    sh, sw = pair(kernel_size if stride is None else stride, "stride", 1)
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation", 1)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"{op}: padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}"
        )
    h, w = x.shape[2:]
    ho = out_size(h, kh, sh, dh, ph, ceil_mode)
    wo = out_size(w, kw, sw, dw, pw, ceil_mode)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if ho < 1 or wo < 1:
        raise too_small(op, x, f"the kernel {(kh, kw)}", h + 2 * ph, w + 2 * pw, eh, ew)
    # ceil_mode's last window may reach past the padding: pad that overhang too.
    pb = max(ph, (ho - 1) * sh + eh - h - ph)
    pr = max(pw, (wo - 1) * sw + ew - w - pw)
    return Geom(kh, kw, sh, sw, dh, dw, ph, pb, pw, pr, ho, wo)


def _from_nc(a: np.ndarray, swapped: bool) -> np.ndarray:
    return a.transpose(1, 0, 2, 3) if swapped else a


def max_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """Largest value of each window; the gradient goes to the window's first maximum."""
    g = _pool_geom("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    a, swapped = _nc_major(x.data)
    ap = g.pad(a, -np.inf)
    offsets = g.offsets()
    m = np.array(g.at(ap, 0, 0), order="C")
    if not (x.requires_grad and is_grad_enabled()):  # no backward: no argmax to keep
        for i, j in offsets[1:]:
            np.maximum(m, g.at(ap, i, j), out=m)
        return _make(_from_nc(m, swapped), (x,), "max_pool2d", _max_pool2d_bw)
    idx = np.zeros(m.shape, np.uint8 if len(offsets) < 256 else np.int32)
    for k, (i, j) in enumerate(offsets[1:], 1):
        v = g.at(ap, i, j)
        better = v > m  # strict: a tie keeps the earlier maximum, as torch does
        np.maximum(m, v, out=m)
        # Each later winner has a larger k, so the window's last winner is the largest k
        # that won: a max, where a masked copy would cost ten times as much.
        np.maximum(idx, better.view(np.uint8) * idx.dtype.type(k), out=idx)
    if np.isnan(np.add.reduce(m, axis=None)):  # rare: NaN (or inf - inf) somewhere
        for k, (i, j) in enumerate(offsets):
            v = g.at(ap, i, j)
            idx[v != v] = k  # torch's max pool takes a window's last NaN
    out = _make(_from_nc(m, swapped), (x,), "max_pool2d", _max_pool2d_bw)
    if out._backward is not None:
        out._ctx = (idx, g, swapped)
    return out


def _max_pool2d_bw(out: Tensor) -> None:
    x = out._prev[0]
    idx, g, swapped = out._ctx
    gy = np.asarray(_from_nc(out.grad, swapped), order="C")  # (A, B, Ho, Wo), A B = N C or C N
    a, b = gy.shape[:2]
    h, w = x.shape[2:]
    dxp = np.zeros((a, b, h + g.pt + g.pb, w + g.pl + g.pr), gy.dtype)
    add = g.overlapping()
    for k, (i, j) in enumerate(g.offsets()):
        view = g.at(dxp, i, j)
        if add:
            view += gy * (idx == k)
        else:  # each input element is in one window at most: write, do not add
            np.multiply(gy, idx == k, out=view)
    _accumulate(x, _from_nc(g.unpad(dxp, h, w), swapped))


def avg_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean of each window, divided as torch divides (see _divisor)."""
    g = _pool_geom("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (
        isinstance(divisor_override, bool) or divisor_override < 1
    ):
        raise ValueError(f"avg_pool2d: divisor_override must be positive, got {divisor_override}")
    a, swapped = _nc_major(x.data)
    ap = g.pad(a, 0)
    s = np.array(g.at(ap, 0, 0), order="C")
    for i, j in g.offsets()[1:]:
        s += g.at(ap, i, j)
    div = _divisor(x.shape[2:], g, count_include_pad, divisor_override, s.dtype)
    s /= div
    out = _make(_from_nc(s, swapped), (x,), "avg_pool2d", _avg_pool2d_bw)
    if out._backward is not None:
        out._ctx = (div, g, swapped)
    return out


def _divisor(
    hw: tuple[int, ...], g: Geom, include_pad: bool, override: int | None, dtype: np.dtype
) -> Any:
    """Each window's divisor: a number, or an (Ho, Wo) array where windows differ.

    torch divides by the window's size clipped to the padded input (never counting
    ceil_mode's overhang), or with count_include_pad=False clipped to the input itself.
    """
    if override is not None:
        return dtype.type(override)
    h, w = hw
    full = g.pt == g.pb and g.pl == g.pr  # no overhang
    if full and (include_pad or not (g.pt or g.pl)):
        return dtype.type(g.kh * g.kw)
    ones = np.zeros((h + g.pt + g.pb, w + g.pl + g.pr), dtype)
    if include_pad:
        ones[: h + 2 * g.pt, : w + 2 * g.pl] = 1
    else:
        ones[g.pt : g.pt + h, g.pl : g.pl + w] = 1
    return sum(g.at(ones, i, j) for i, j in g.offsets())


def _avg_pool2d_bw(out: Tensor) -> None:
    x = out._prev[0]
    div, g, swapped = out._ctx
    gy = _from_nc(out.grad, swapped) / div
    a, b = gy.shape[:2]
    h, w = x.shape[2:]
    dxp = np.zeros((a, b, h + g.pt + g.pb, w + g.pl + g.pr), gy.dtype)
    add = g.overlapping()
    for i, j in g.offsets():
        view = g.at(dxp, i, j)
        if add:
            view += gy
        else:
            view[...] = gy
    _accumulate(x, _from_nc(g.unpad(dxp, h, w), swapped))
