"""engine.nn's image layers: Conv2d, MaxPool2d, AvgPool2d, Flatten, Dropout, BatchNorm2d.

Shaped like PyTorch's: the same arguments, parameter and buffer names, default init and
train/eval behaviour. engine.nn re-exports them and rebuilds them from their config.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradscope.engine import conv, norm, pool
from gradscope.engine.module import Module, Parameter, generator
from gradscope.engine.tensor import Tensor


def _positive(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


class Conv2d(Module):
    """2-D convolution, weight (out, in/groups, kh, kw), init like torch (kaiming-uniform
    with a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias alike)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: conv.IntPair,
        stride: conv.IntPair = 1,
        padding: conv.IntPair | str = 0,
        dilation: conv.IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: Any = np.float32,
    ) -> None:
        self.in_channels = _positive("in_channels", in_channels)
        self.out_channels = _positive("out_channels", out_channels)
        self.groups = _positive("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros', got {padding_mode!r}")
        self.kernel_size = conv.pair(kernel_size, "kernel_size", 1)
        self.stride = conv.pair(stride, "stride", 1)
        self.dilation = conv.pair(dilation, "dilation", 1)
        self.padding = padding if isinstance(padding, str) else conv.pair(padding, "padding")
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same' or ints, got {padding!r}")
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        bound = 1 / math.sqrt(math.prod(shape[1:]))
        rng = generator()
        self.weight = Parameter(rng.uniform(-bound, bound, shape), dtype)
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return conv.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def config(self) -> dict[str, Any]:
        return {
            "type": "Conv2d",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias is not None,
        }

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding})"
        )


class _Pool(Module):
    def __init__(
        self,
        kernel_size: conv.IntPair,
        stride: conv.IntPair | None = None,
        padding: conv.IntPair = 0,
        ceil_mode: bool = False,
    ) -> None:
        self.kernel_size = conv.pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else conv.pair(stride, "stride", 1)
        self.padding = conv.pair(padding, "padding")
        self.ceil_mode = bool(ceil_mode)

    _extra: tuple[str, ...] = ()  # a subclass's own arguments, for config()

    def config(self) -> dict[str, Any]:
        keys = ("kernel_size", "stride", "padding", "ceil_mode")
        out = {"type": type(self).__name__}
        for k in (*keys, *self._extra):
            v = getattr(self, k)
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool2d(_Pool):
    """Largest value of each window (the gradient goes to its first maximum, as in torch)."""

    _extra = ("dilation",)

    def __init__(
        self,
        kernel_size: conv.IntPair,
        stride: conv.IntPair | None = None,
        padding: conv.IntPair = 0,
        dilation: conv.IntPair = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = conv.pair(dilation, "dilation", 1)

    def forward(self, x: Tensor) -> Tensor:
        return pool.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )


class AvgPool2d(_Pool):
    """Mean of each window (padding counted by default, as in torch)."""

    _extra = ("count_include_pad", "divisor_override")

    def __init__(
        self,
        kernel_size: conv.IntPair,
        stride: conv.IntPair | None = None,
        padding: conv.IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return pool.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class Flatten(Module):
    """Merge dims start_dim..end_dim (default: all but the batch dim) into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def config(self) -> dict[str, Any]:
        return {"type": "Flatten", "start_dim": self.start_dim, "end_dim": self.end_dim}


class Dropout(Module):
    """Zero elements with probability p in training (scaling the rest by 1/(1-p))."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return norm.dropout(x, self.p, self.training)

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "p": self.p}

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class BatchNorm2d(Module):
    """Per-channel batch normalisation of (N, C, H, W) inputs, with running statistics.

    momentum=None averages all batches so far (num_batches_tracked), as in torch.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        self.num_features = _positive("num_features", num_features)
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.weight = Parameter(np.ones(num_features), dtype) if affine else None
        self.bias = Parameter(np.zeros(num_features), dtype) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d expects a 4-D (N, C, H, W) input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm2d: input shape {x.shape} has {x.shape[1]} channels, "
                f"the layer's weight shape ({self.num_features},) expects {self.num_features}"
            )
        tracking = self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and tracking:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # a cumulative average
                momentum = 1 / int(self.num_batches_tracked.data)
        # Tracked statistics move in training and normalise in evaluation; untracked ones
        # do not exist, and the batch's own statistics are used in both modes.
        return norm.batch_norm(
            x,
            self.running_mean if tracking else None,
            self.running_var if tracking else None,
            self.weight,
            self.bias,
            self.training or not tracking,
            momentum,
            self.eps,
        )

    def config(self) -> dict[str, Any]:
        return {
            "type": "BatchNorm2d",
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum})"


MODULES: dict[str, type[Module]] = {
    "Conv2d": Conv2d,
    "MaxPool2d": MaxPool2d,
    "AvgPool2d": AvgPool2d,
    "Flatten": Flatten,
    "Dropout": Dropout,
    "BatchNorm2d": BatchNorm2d,
}
