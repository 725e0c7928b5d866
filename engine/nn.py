"""engine.nn: PyTorch-shaped modules (the image layers live in engine.nn_conv, the base
classes in engine.module), with checkpoints as .npz + a JSON architecture."""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.engine import functional
from gradscope.engine.module import (  # noqa: F401 (engine.nn's API)
    Module,
    Parameter,
    generator,
    manual_seed,
)
from gradscope.engine.nn_conv import MODULES as _CONV_MODULES
from gradscope.engine.nn_conv import (  # noqa: F401 (engine.nn's API)
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    MaxPool2d,
)
from gradscope.engine.tensor import Tensor

# `import engine.nn.functional as F` works like torch.nn.functional.
sys.modules[f"{__name__}.functional"] = functional


class Linear(Module):
    """y = x @ weight.T + bias, initialised like PyTorch: U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype: Any = np.float32
    ) -> None:
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear sizes must be positive, got {in_features}, {out_features}")
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        rng = generator()
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)), dtype)
        # Column-major (out, in) storage: weight.T is then C-contiguous, which puts both
        # big products of a step (x @ W.T and the weight gradient) on BLAS's fast path.
        self.weight.data = np.asfortranarray(self.weight.data)
        self.bias = Parameter(rng.uniform(-bound, bound, out_features), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return functional.linear(x, self.weight, self.bias)

    def config(self) -> dict[str, Any]:
        return {
            "type": "Linear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class _Activation(Module):
    """A parameter-free elementwise module; remembers its last output for health stats."""

    op = ""

    def __init__(self) -> None:
        self._last: weakref.ref[Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        out = getattr(x, self.op)()
        # A weak reference: holding the output (and through it the whole graph) until the
        # next step would make every step write to fresh, cache-cold memory.
        self._last = weakref.ref(out)
        return out

    @property
    def last_output(self) -> Tensor | None:
        """The output of the last forward while its graph is still alive, else None."""
        return self._last() if self._last is not None else None

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


class ReLU(_Activation):
    op = "relu"


class Tanh(_Activation):
    op = "tanh"


class Sigmoid(_Activation):
    op = "sigmoid"


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x

    def config(self) -> dict[str, Any]:
        return {"type": "Identity"}


ACTIVATIONS: dict[str, type[Module]] = {
    "relu": ReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "linear": Identity,
    "identity": Identity,
}


class Sequential(Module):
    """Modules applied in order."""

    def __init__(self, *modules: Module) -> None:
        self.layers = list(modules)
        # Name the parameters so the computation graph reads like the network.
        for name, p in self.named_parameters():
            p.label = p.label or name

    def forward(self, x: Tensor) -> Tensor:
        for m in self.layers:
            x = m(x)
        return x

    def children(self) -> Iterator[tuple[str, Module]]:
        # Named by position, as in PyTorch: "0.weight", "2.bias", ...
        return ((str(i), m) for i, m in enumerate(self.layers))

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def config(self) -> dict[str, Any]:
        return {"type": "Sequential", "modules": [m.config() for m in self.layers]}

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


class MLP(Sequential):
    """Linear layers of the given sizes with an activation between them (none after the last)."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        output_activation: str = "linear",
        bias: bool = True,
    ) -> None:
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least an input and an output size, got {sizes}")
        for name in (activation, output_activation):
            if name not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
        layers: list[Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(Linear(a, b, bias=bias))
            act = activation if i < len(sizes) - 2 else output_activation
            if ACTIVATIONS[act] is not Identity:
                layers.append(ACTIVATIONS[act]())
        super().__init__(*layers)
        self.sizes, self.activation, self.output_activation = sizes, activation, output_activation
        self.bias = bias

    def config(self) -> dict[str, Any]:
        return {
            "type": "MLP",
            "sizes": self.sizes,
            "activation": self.activation,
            "output_activation": self.output_activation,
            "bias": self.bias,
        }


def from_config(config: dict[str, Any]) -> Module:
    """Rebuild a module from its JSON architecture (fresh weights; load a state dict next)."""
    kind = config.get("type")
    args = {k: v for k, v in config.items() if k != "type"}
    if kind == "Sequential":
        return Sequential(*(from_config(c) for c in args.get("modules", [])))
    simple: dict[str, type[Module]] = {
        "Linear": Linear,
        "MLP": MLP,
        "ReLU": ReLU,
        "Tanh": Tanh,
        "Sigmoid": Sigmoid,
        "Identity": Identity,
        **_CONV_MODULES,
    }
    if kind not in simple:
        raise ValueError(f"unknown module type {kind!r} in architecture")
    try:
        return simple[kind](**args)
    except TypeError as e:
        raise ValueError(f"bad architecture for {kind}: {e}") from None


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temp file in the same folder and rename, so a crash leaves no half file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: Module, path: str | Path) -> tuple[Path, Path]:
    """Save weights to PATH.npz and the architecture to PATH.json; returns both paths."""
    base = Path(path)
    npz, js = base.with_suffix(".npz"), base.with_suffix(".json")
    _atomic_write(npz, lambda f: np.savez(f, **model.state_dict()))
    arch = json.dumps(
        {"format": "gradscope-model", "version": 1, "architecture": model.config()}, indent=2
    )
    _atomic_write(js, lambda f: f.write(arch.encode()))
    return npz, js


def load(path: str | Path) -> Module:
    """Rebuild a model saved by `save` (never unpickles: allow_pickle=False)."""
    base = Path(path)
    npz, js = base.with_suffix(".npz"), base.with_suffix(".json")
    try:
        meta = json.loads(js.read_text())
        arch = meta["architecture"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the model architecture {js}: {e}") from None
    model = from_config(arch)
    try:
        with np.load(npz, allow_pickle=False) as f:
            state = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the model weights {npz}: {e}") from None
    model.load_state_dict(state)
    return model
