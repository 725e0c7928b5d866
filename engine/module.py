"""engine.nn's base classes: Parameter, Module (parameters, buffers, train/eval, state
dicts) and the generator that initialises layers and draws dropout masks.

Kept apart from the layers so that engine.nn and engine.nn_conv both build on it without
importing each other in a circle; engine.nn re-exports everything here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gradscope.engine.tensor import Tensor

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seed the generator of layer initialisation and dropout (like torch.manual_seed)."""
    global _rng
    _rng = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator manual_seed last seeded (read at each use: it may be replaced)."""
    return _rng


class Parameter(Tensor):
    """A tensor that a Module owns and an optimizer updates."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = np.float32, label: str = "") -> None:
        super().__init__(data, requires_grad=True, dtype=dtype, label=label)


class Module:
    """Base class: parameters found through attributes, in the order they were set.

    Buffers (BatchNorm's running statistics) are tensors that are state but not
    parameters: registered by name, saved and loaded with the parameters, never trained.
    """

    training = True
    _buffer_names: tuple[str, ...] = ()

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError

    def children(self) -> Iterator[tuple[str, Module]]:
        for name, v in vars(self).items():
            if isinstance(v, Module):
                yield name, v
            elif isinstance(v, list | tuple):
                for i, m in enumerate(v):
                    if isinstance(m, Module):
                        yield f"{name}.{i}", m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, v in vars(self).items():
            if isinstance(v, Parameter):
                yield prefix + name, v
        for name, m in self.children():
            yield from m.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Keep value (copied, dtype kept) as the buffer self.<name>, as torch does."""
        setattr(self, name, Tensor(np.asarray(value)))
        if name not in self._buffer_names:
            self._buffer_names = (*self._buffer_names, name)

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name in self._buffer_names:
            yield prefix + name, getattr(self, name)
        for name, m in self.children():
            yield from m.named_buffers(f"{prefix}{name}.")

    def modules(self) -> Iterator[Module]:
        yield self
        for _, m in self.children():
            yield from m.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def _state(self) -> dict[str, Tensor]:
        return {**dict(self.named_parameters()), **dict(self.named_buffers())}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by dotted name."""
        return {name: t.data.copy() for name, t in self._state().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers; names and shapes must all match."""
        own = self._state()
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or unexpected:
            raise KeyError(
                f"state dict mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        for name, p in own.items():
            arr = np.asarray(state[name])
            if arr.shape != p.shape:
                raise ValueError(f"{name}: shape {arr.shape} in the state dict, {p.shape} here")
        for name, p in own.items():
            p.data[...] = state[name]  # in place, so optimizers holding p keep working

    def config(self) -> dict[str, Any]:
        """The JSON architecture that rebuilds this module (weights aside)."""
        raise NotImplementedError(f"{type(self).__name__} cannot describe its architecture")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
