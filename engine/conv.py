"""2-D convolution over (N, C, H, W) tensors, PyTorch's semantics, forward beside backward,
and the window geometry engine.pool shares.

conv2d is im2col plus one matrix product: the input's patches are copied, one strided
copy, into a (C*kh*kw, N*Ho*Wo) matrix, which the (O, C*kh*kw) weight multiplies. The
product comes out as (O, N, Ho, Wo) in memory and is handed on as an (N, O, Ho, Wo) view
(channels-major, like torch's channels_last is channels-minor): numpy's elementwise ops
keep that layout, so the backward's gradient arrives in it and reshapes to a matrix for
free. The weight gradient reuses the saved patch matrix; the input gradient is the
transposed product, added back into place (col2im) by one strided add per kernel offset.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from gradscope.engine.autograd import accumulate as _accumulate
from gradscope.engine.dtypes import promote
from gradscope.engine.tensor import Tensor, _make

IntPair = int | tuple[int, int]


def pair(v: Any, name: str, low: int = 0) -> tuple[int, int]:
    """An int or two ints as (h, w), each at least low, or a ValueError naming `name`."""
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        h = w = int(v)
    elif (
        isinstance(v, tuple | list)
        and len(v) == 2
        and all(isinstance(a, int | np.integer) and not isinstance(a, bool) for a in v)
    ):
        h, w = int(v[0]), int(v[1])
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if h < low or w < low:
        raise ValueError(f"{name} must be >= {low}, got {v!r}")
    return h, w


class Geom(NamedTuple):
    """Where each kernel offset reads: kernel, stride, dilation, padding (top, bottom,
    left, right, the bottom/right ones including ceil_mode's overhang) and output size."""

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    ho: int
    wo: int

    def offsets(self) -> list[tuple[int, int]]:
        """Every kernel offset (i, j), row by row: the order torch scans a window in."""
        return [(i, j) for i in range(self.kh) for j in range(self.kw)]

    def at(self, a: np.ndarray, i: int, j: int) -> np.ndarray:
        """The view of padded a (..., Hp, Wp) that kernel offset (i, j) reads, (..., Ho, Wo)."""
        top, left = i * self.dh, j * self.dw
        return a[
            ...,
            top : top + self.sh * (self.ho - 1) + 1 : self.sh,
            left : left + self.sw * (self.wo - 1) + 1 : self.sw,
        ]

    def overlapping(self) -> bool:
        """Do two windows share an input element (then gradients add, not assign)?"""
        return self.sh < self.dh * (self.kh - 1) + 1 or self.sw < self.dw * (self.kw - 1) + 1

    def pad(self, a: np.ndarray, value: float) -> np.ndarray:
        """a with its last two axes padded by value (a itself when there is no padding)."""
        if not (self.pt or self.pb or self.pl or self.pr):
            return a
        *lead, h, w = a.shape
        out = np.full((*lead, h + self.pt + self.pb, w + self.pl + self.pr), value, a.dtype)
        out[..., self.pt : self.pt + h, self.pl : self.pl + w] = a
        return out

    def unpad(self, a: np.ndarray, h: int, w: int) -> np.ndarray:
        """The (..., h, w) input region of padded a (a view)."""
        return a[..., self.pt : self.pt + h, self.pl : self.pl + w]


def check_4d(op: str, x: Tensor) -> None:
    """A ValueError naming op unless x is (N, C, H, W)."""
    if x.ndim != 4:
        raise ValueError(f"{op} expects a 4-D (N, C, H, W) input, got shape {x.shape}")


def too_small(op: str, x: Tensor, what: str, hp: int, wp: int, eh: int, ew: int) -> ValueError:
    """The error for a kernel that does not fit the padded input: names both shapes."""
    return ValueError(
        f"{op}: input shape {x.shape} (padded to {hp}x{wp}) is smaller than {what} "
        f"(dilated to {eh}x{ew})"
    )


def out_size(size: int, k: int, s: int, d: int, p: int, ceil: bool) -> int:
    """torch's pooling_output_shape (and the conv output size, where ceil is False)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:  # the last window must start inside
        out -= 1
    return out


# -- conv2d ---------------------------------------------------------------------------------


def _conv_geom(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: IntPair, padding: IntPair | str,
    dilation: IntPair, groups: int,
) -> Geom:  # fmt: skip
    """conv2d's geometry, or a ValueError naming the shapes that do not fit."""
    check_4d("conv2d", x)
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D (O, C/groups, kh, kw) weight, got {weight.shape}")
    c, h, w = x.shape[1:]
    o, cg, kh, kw = weight.shape
    if isinstance(groups, bool) or not isinstance(groups, int | np.integer) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if o % groups:
        raise ValueError(f"conv2d: groups={groups} does not divide the {o} output channels")
    if c != cg * groups:
        raise ValueError(
            f"conv2d: input shape {x.shape} has {c} channels, but weight shape {weight.shape} "
            f"with groups={groups} expects {cg * groups}"
        )
    if bias is not None and bias.shape != (o,):
        raise ValueError(f"conv2d: bias shape {bias.shape} does not match weight {weight.shape}")
    sh, sw = pair(stride, "stride", 1)
    dh, dw = pair(dilation, "dilation", 1)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError("conv2d: padding='same' needs stride 1 (as in PyTorch)")
            # torch puts the odd one of an even kernel's padding at the bottom/right
            pads = ((eh - 1) // 2, eh // 2, (ew - 1) // 2, ew // 2)
        else:
            raise ValueError(f"conv2d: padding must be 'valid', 'same' or ints, got {padding!r}")
    else:
        ph, pw = pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
    if hp < eh or wp < ew:
        raise too_small("conv2d", x, f"the kernel of weight shape {weight.shape}", hp, wp, eh, ew)
    return Geom(kh, kw, sh, sw, dh, dw, *pads, (hp - eh) // sh + 1, (wp - ew) // sw + 1)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) x with (O, C/groups, kh, kw) weight (torch's)."""
    g = _conv_geom(x, weight, bias, stride, padding, dilation, groups)
    n, o = x.shape[0], weight.shape[0]
    xd, wd = x.data, weight.data
    if xd.dtype != wd.dtype:
        xd, wd = promote(xd, wd, floating=True)
    cols, row = _im2col(xd, g)
    wm = wd.reshape(o, -1)
    if groups == 1:
        y = wm @ cols
    else:
        y = np.matmul(wm.reshape(groups, o // groups, -1), cols.reshape(groups, -1, cols.shape[1]))
        y = y.reshape(o, cols.shape[1])
    if bias is not None:
        y += bias.data[:, None]
    data = y.reshape(o, n, g.ho, row)[..., : g.wo].transpose(1, 0, 2, 3)
    prev = (x, weight) if bias is None else (x, weight, bias)
    out = _make(data, prev, "conv2d", _conv2d_bw)
    if out._backward is not None:
        # The patches are needed only for the weight's gradient.
        out._ctx = (cols if weight.requires_grad else None, g, groups, row)
    return out


# The wide layout computes Wp - Wo junk columns per row: worth it for the fast copies
# while they are few (LeNet's first conv: 4 of 28), not for small maps (its second: 4 of
# 10, where 40% more matrix product costs more than the copies save).
WIDE_WASTE = 0.25


def _wide(g: Geom) -> bool:
    """Stride 1 with few junk columns: compute whole padded rows (see _im2col)."""
    return g.sh == 1 and g.sw == 1 and (g.pl + g.pr + g.dw * (g.kw - 1)) <= WIDE_WASTE * g.wo


def _im2col(x: np.ndarray, g: Geom) -> tuple[np.ndarray, int]:
    """x's patches as a (C*kh*kw, N*Ho*R) matrix, rows in (c, i, j) order, and R.

    R is Wo, or with stride 1 the padded width Wp: the output is then computed over whole
    padded rows (its last Wp - Wo columns are junk, dropped by the caller), which makes
    each (c, i, j, n) patch row one run of Ho*Wp elements of the padded image, so the
    copy streams long runs instead of Wo-element pieces. One spare zero row under each
    image keeps the last run inside it.
    """
    n, c, h, w = x.shape
    hp, wp = h + g.pt + g.pb, w + g.pl + g.pr
    if _wide(g):
        xp = np.zeros((c, n, hp + 1, wp), x.dtype)
        xp[:, :, g.pt : g.pt + h, g.pl : g.pl + w] = x.transpose(1, 0, 2, 3)
        run, e = g.ho * wp, xp.itemsize
        s_c, s_n = xp.strides[:2]
        shape, strides = (c, g.kh, g.kw, n, run), (s_c, g.dh * wp * e, g.dw * e, s_n, e)
        row = wp
    else:
        xp = g.pad(x.transpose(1, 0, 2, 3), 0)  # (C, N, Hp, Wp)
        s_c, s_n, s_h, s_w = xp.strides
        shape = (c, g.kh, g.kw, n, g.ho, g.wo)
        strides = (s_c, s_h * g.dh, s_w * g.dw, s_n, s_h * g.sh, s_w * g.sw)
        row = g.wo
    view = as_strided(xp, shape, strides, writeable=False)
    return np.ascontiguousarray(view).reshape(c * g.kh * g.kw, n * g.ho * row), row


def _col2im(cols: np.ndarray, shape: tuple[int, ...], g: Geom) -> np.ndarray:
    """The (N, C, H, W) sum of _im2col-shaped patch gradients at their places.

    In the wide layout the junk columns' gradients are zero (the caller zero-fills them),
    so adding whole runs puts nothing where it does not belong.
    """
    n, c, h, w = shape
    hp, wp = h + g.pt + g.pb, w + g.pl + g.pr
    if _wide(g):
        run = g.ho * wp
        flat = np.zeros((c, n, (hp + 1) * wp), cols.dtype)
        patches = cols.reshape(c, g.kh, g.kw, n, run)
        for i, j in g.offsets():
            start = i * g.dh * wp + j * g.dw
            view = flat[:, :, start : start + run]
            view += patches[:, i, j]
        dxp = flat.reshape(c, n, hp + 1, wp)
    else:
        dxp = np.zeros((c, n, hp, wp), cols.dtype)
        patches = cols.reshape(c, g.kh, g.kw, n, g.ho, g.wo)
        for i, j in g.offsets():
            view = g.at(dxp, i, j)
            view += patches[:, i, j]
    return g.unpad(dxp, h, w).transpose(1, 0, 2, 3)


def _conv2d_bw(out: Tensor) -> None:
    x, weight = out._prev[0], out._prev[1]
    cols, g, groups, row = out._ctx
    o = weight.shape[0]
    gy = out.grad.transpose(1, 0, 2, 3)  # (O, N, Ho, Wo)
    if row != g.wo:  # back to the forward's wide rows, junk columns zero
        wide = np.zeros((*gy.shape[:3], row), gy.dtype)
        wide[..., : g.wo] = gy
        gy = wide
    # -> (O, N*Ho*R): free when the gradient kept the forward's layout.
    gy = gy.reshape(o, math.prod(gy.shape[1:]))  # not -1: an empty batch is ambiguous
    if len(out._prev) == 3 and out._prev[2].requires_grad:
        _accumulate(out._prev[2], np.add.reduce(gy, axis=1))
    wd = weight.data
    if wd.dtype != gy.dtype:
        wd = wd.astype(gy.dtype)
    if groups == 1:
        if weight.requires_grad:
            # (patches @ gy.T).T: BLAS reduces the long axis faster this way round.
            _accumulate(weight, (cols @ gy.T).T.reshape(weight.shape))
        if x.requires_grad:
            _accumulate(x, _col2im(wd.reshape(o, -1).T @ gy, x.shape, g))
        return
    gy3 = gy.reshape(groups, o // groups, gy.shape[1])
    w3 = wd.reshape(groups, o // groups, -1)
    if weight.requires_grad:
        c3 = cols.reshape(groups, -1, cols.shape[1])
        gw = np.matmul(c3, gy3.transpose(0, 2, 1)).transpose(0, 2, 1)
        _accumulate(weight, gw.reshape(weight.shape))
    if x.requires_grad:
        dcols = np.matmul(w3.transpose(0, 2, 1), gy3).reshape(-1, gy.shape[1])
        _accumulate(x, _col2im(dcols, x.shape, g))
