"""How many parameters a JSON architecture (a checkpoint's header, a bundled model's .json)
would build, counted from its numbers alone, so that a header naming a huge model is refused
before `engine.nn.from_config` allocates anything.
"""

from __future__ import annotations

import itertools
from typing import Any

# Parameters an architecture may have before it is built: the server passes its
# GRADSCOPE_MAX_PARAMETERS; `gradscope export-model` and the bundled models use this.
MAX_PARAMETERS = 5_000_000
MAX_MODULES = 10_000  # modules in one architecture: far more than any model here has


def architecture_parameters(arch: Any, limit: int = MAX_PARAMETERS) -> int:
    """The parameters `arch` would build; ValueError past `limit` or for a malformed one."""
    total, todo, seen = 0, [arch], 0
    while todo:
        c = todo.pop()
        seen += 1
        if not isinstance(c, dict) or seen > MAX_MODULES:
            raise ValueError("the architecture is not a list of modules")
        if c.get("type") == "Sequential":
            mods = c.get("modules", [])
            todo.extend(mods if isinstance(mods, list) else [None])
            continue
        total += module_parameters(c)
        if total > limit:
            raise ValueError(
                f"its architecture has more than {limit:,} parameters (GRADSCOPE_MAX_PARAMETERS)"
            )
    return total


def _size(c: dict[str, Any], key: str, default: Any = None) -> int:
    """A size field (an int, or a list of ints multiplied), checked: never a huge list."""
    v = c.get(key, default)
    values = v if isinstance(v, list) else [v]
    ok = 0 < len(values) <= 2 and all(type(x) is int and x >= 0 for x in values)
    if not ok:
        raise ValueError(f"{c.get('type')}.{key} is {v!r}, not a size")
    return values[0] * (values[1] if len(values) > 1 else 1)


def module_parameters(c: dict[str, Any]) -> int:
    """One module's parameters (0 for those without: activations, pooling, Flatten...)."""
    kind, bias = c.get("type"), c.get("bias", True) is not False
    if kind == "Linear":
        out = _size(c, "out_features")
        return _size(c, "in_features") * out + (out if bias else 0)
    if kind == "MLP":
        sizes = c.get("sizes")
        if not isinstance(sizes, list) or not 2 <= len(sizes) <= 1000:
            raise ValueError(f"MLP.sizes is {sizes!r}, not a list of sizes")
        widths = [_size({"type": "MLP", "size": v}, "size") for v in sizes]
        return sum(a * b + (b if bias else 0) for a, b in itertools.pairwise(widths))
    if kind == "Conv2d":
        out, groups = _size(c, "out_channels"), max(1, _size(c, "groups", 1))
        weights = out * (_size(c, "in_channels") // groups) * _size(c, "kernel_size")
        return weights + (out if bias else 0)
    if kind == "BatchNorm2d":
        return 2 * _size(c, "num_features")
    return 0
