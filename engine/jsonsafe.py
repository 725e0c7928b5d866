"""Numbers JSON can carry: the one definition of the JSON-safe float.

JSON has no NaN or infinities, so they travel as the strings "nan", "inf" and "-inf".
-0.0 becomes 0.0 (relu's x * mask makes it), so equal values print the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

NON_FINITE = ("nan", "inf", "-inf")


def json_float(x: float) -> float | str:
    """A float JSON can carry: NaN and infinities become "nan", "inf", "-inf"."""
    x = float(x) + 0.0  # + 0.0 turns -0.0 into 0.0
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def json_floats(a: Any, decimals: int | None = None) -> list[float | str]:
    """An array's values, flattened in C order, as JSON-safe floats."""
    a = np.asarray(a, dtype=np.float64).ravel()
    if decimals is not None:
        a = np.round(a, decimals)
    if np.isfinite(a).all():
        return (a + 0.0).tolist()
    return [json_float(v) for v in a.tolist()]


def json_safe(value: Any) -> Any:
    """A value with every non-finite float (in dicts, lists, numpy arrays) made a string."""
    if isinstance(value, float):
        return value if math.isfinite(value) else json_float(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return json_safe(value.tolist())
    return value
