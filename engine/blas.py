"""numpy's own BLAS for y += alpha * x (axpy), the one routine SGD needs that numpy lacks.

In numpy, `w -= lr * g` takes two passes over memory (a scaled temporary, then the
subtraction), on one thread. BLAS axpy does it in one pass, on BLAS's own thread pool,
which is already awake from the step's matrix products: on the 784-256-128-10 MLP it
takes the SGD step from ~110 to ~75 us. We call the ILP64 OpenBLAS that numpy's wheels
ship and load; where it cannot be found (other builds), or with GRADSCOPE_NO_BLAS_AXPY
set, `axpy` returns False and the caller does the numpy update instead: results differ
between the two paths only by rounding (BLAS may fuse the multiply-add).
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np

# Below this many elements the pass saved (a few us) no longer pays for ctypes' call and
# another hand-off to BLAS's threads (each one a chance to wait on a descheduled thread).
MIN_SIZE = 65536

# ILP64 names only (64-bit sizes, by the symbol suffix), so the argument types are certain.
_PREFIXES = ("scipy_cblas_", "cblas_")
_SUFFIX = "64_"


def _libraries() -> list[str]:
    """Paths of the OpenBLAS that numpy bundles (Linux and Windows wheels, then macOS)."""
    root = os.path.dirname(np.__file__)
    found: list[str] = []
    for pattern in (
        os.path.join(root + ".libs", "*openblas*"),
        os.path.join(root, ".dylibs", "*openblas*"),
    ):
        found.extend(sorted(glob.glob(pattern)))
    return found


def _bind(lib: ctypes.CDLL, letter: str, real: Any) -> Any:
    for prefix in _PREFIXES:
        f = getattr(lib, f"{prefix}{letter}axpy{_SUFFIX}", None)
        if f is not None:
            f.argtypes = [
                ctypes.c_int64,
                real,
                ctypes.c_void_p,
                ctypes.c_int64,
                ctypes.c_void_p,
                ctypes.c_int64,
            ]
            f.restype = None
            return f
    return None


def _load() -> dict[np.dtype, Any]:
    """The axpy routines by dtype, each checked against numpy once; {} when there are none."""
    if os.environ.get("GRADSCOPE_NO_BLAS_AXPY"):
        return {}
    for path in _libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        routines = {}
        for dtype, letter, real in (
            (np.dtype(np.float32), "s", ctypes.c_float),
            (np.dtype(np.float64), "d", ctypes.c_double),
        ):
            f = _bind(lib, letter, real)
            if f is not None and _works(f, dtype):
                routines[dtype] = f
        if routines:
            return routines
    return {}


def _works(f: Any, dtype: np.dtype) -> bool:
    """Does f compute y += a * x like numpy (to rounding), on and above the threading size?"""
    for n in (5, 3 * MIN_SIZE + 1):
        x = np.linspace(-1, 1, n).astype(dtype)
        y = np.linspace(2, 3, n).astype(dtype)
        want = y + dtype.type(-0.25) * x
        try:
            f(n, -0.25, x.ctypes.data, 1, y.ctypes.data, 1)
        except Exception:
            return False
        if not np.allclose(y, want, rtol=1e-6, atol=0):
            return False
    return True


_AXPY = _load()


def available() -> bool:
    """True when axpy can run on BLAS in this process."""
    return bool(_AXPY)


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> bool:
    """y += alpha * x in one BLAS pass; False, with y untouched, where that does not apply.

    It applies to writeable float32/float64 arrays of the same shape, dtype and contiguous
    layout (both C or both F order), of at least MIN_SIZE elements, that do not overlap.
    """
    if y.size < MIN_SIZE:
        return False
    f = _AXPY.get(y.dtype)
    if f is None or x.dtype != y.dtype or x.shape != y.shape or not y.flags.writeable:
        return False
    xf, yf = x.flags, y.flags
    if not ((xf.c_contiguous and yf.c_contiguous) or (xf.f_contiguous and yf.f_contiguous)):
        return False
    px, py = x.__array_interface__["data"][0], y.__array_interface__["data"][0]  # < .ctypes
    if px < py + y.nbytes and py < px + x.nbytes:
        return False  # overlapping memory: numpy's temporary gives the defined answer
    f(y.size, alpha, px, 1, py, 1)
    return True
