"""Checkpoints: a model's parameters and buffers (BatchNorm's running statistics, via its
state_dict) and its optimizer's state in one .npz, never pickled.

Loading checks everything before it changes anything: the file's structure (a zip of .npy
arrays whose headers fit their sizes, so a crafted header cannot make us allocate
terabytes), the JSON header, every array's name, shape, dtype and finiteness, the
optimizer's hyperparameters and buffers. A file that fails any check raises
`CheckpointError` naming the file, and the model and optimizer are left as they were.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.engine.nn import Module, _atomic_write
from gradscope.engine.optim import MAX_STEPS, LRScheduler, Optimizer

FORMAT = "gradscope-checkpoint"
# The buffer sets each optimizer keeps per parameter (before its first step: none).
BUFFERS = {
    "SGD": ({"momentum_buffer"},),
    "Adam": ({"exp_avg", "exp_avg_sq"},),
    "AdamW": ({"exp_avg", "exp_avg_sq"},),
}
MAX_BYTES = 1 << 32  # 4 GiB of arrays: far above any model this project trains


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model it is loaded into."""


def save_checkpoint(
    path: str | Path,
    model: Module,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write model + optimizer (+ scheduler) state atomically to path (.npz)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.state_dict().items()}
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "architecture": _architecture(model),
        "meta": meta or {},
    }
    if optimizer is not None:
        sd = optimizer.state_dict()
        header["optimizer"] = {
            "type": sd["type"],
            "hyper": sd["hyper"],
            "steps": sd["steps"],
            "param_steps": sd["param_steps"],
            "buffers": [sorted(s) for s in sd["state"]],
        }
        for i, s in enumerate(sd["state"]):
            for name, arr in s.items():
                arrays[f"optim/{i}/{name}"] = arr
    if scheduler is not None:
        header["scheduler"] = scheduler.state_dict()
    arrays["header"] = np.array(json.dumps(header))
    _atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the JSON header, the arrays) of a checkpoint file, checked for structure only."""
    path = Path(path)
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        header = json.loads(str(arrays.pop("header")))
    except CheckpointError:
        raise
    # RuntimeError: zipfile's "member is encrypted", NotImplementedError (an unknown
    # compression) and RecursionError are all RuntimeErrors.
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, RuntimeError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gradscope checkpoint")
    return header, arrays


def load_checkpoint(
    path: str | Path,
    model: Module,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
) -> dict[str, Any]:
    """Restore what save_checkpoint wrote into model/optimizer/scheduler; returns the meta.

    All or nothing: on a CheckpointError the model and optimizer are unchanged.
    """
    path = Path(path)
    header, arrays = read_checkpoint(path)
    try:
        meta = header.get("meta", {})
        if not isinstance(meta, dict):
            raise ValueError("its meta is not an object")
        model_state = _model_state(arrays, model)
        optim_state = None if optimizer is None else _optimizer_state(header, arrays, optimizer)
        sched_state = header.get("scheduler") if scheduler is not None else None
        if sched_state is not None:
            _check_scheduler(sched_state)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {_text(e)}") from None
    before = (
        model.state_dict(),
        None if optimizer is None else optimizer.state_dict(),
        None if scheduler is None else scheduler.state_dict(),
    )
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)  # type: ignore[arg-type]
        if scheduler is not None and sched_state is not None:
            scheduler.load_state_dict(sched_state)
    except (KeyError, ValueError, TypeError) as e:
        model.load_state_dict(before[0])
        if optimizer is not None:
            optimizer.load_state_dict(before[1])  # type: ignore[arg-type]
        if scheduler is not None:
            scheduler.load_state_dict(before[2])  # type: ignore[arg-type]
        raise CheckpointError(f"checkpoint {path} does not fit this model: {_text(e)}") from None
    return meta


# -- checks ---------------------------------------------------------------------------------


def _text(e: BaseException) -> str:
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)


def _check_sizes(path: Path) -> None:
    """Every member a .npy whose header's shape fits in the member's own size."""
    total = 0
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {info.filename!r}")
            total += info.file_size
            if total > MAX_BYTES:
                raise CheckpointError(f"cannot read checkpoint {path}: its arrays are too large")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            need = math.prod(shape) * dtype.itemsize
            if need > info.file_size:
                raise ValueError(
                    f"{info.filename}: shape {shape} needs {need} bytes, holds {info.file_size}"
                )


def _finite_numbers(name: str, arr: np.ndarray) -> None:
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} holds {arr.dtype} values, not numbers")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or Inf")


def _model_state(arrays: dict[str, np.ndarray], model: Module) -> dict[str, np.ndarray]:
    state = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    if missing or unexpected:
        raise ValueError(f"parameters missing {missing}, unexpected {unexpected}")
    for name, arr in state.items():
        if arr.shape != own[name].shape:
            raise ValueError(f"{name}: shape {arr.shape} in the file, {own[name].shape} here")
        _finite_numbers(name, arr)
    return state


def _number(name: str, value: Any, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is {value!r}, not a number")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} is {value!r}, outside [{low}, {high}]")
    return value


def _hyper(given: Any, current: dict[str, Any]) -> dict[str, Any]:
    """The file's hyperparameters, each of the kind the optimizer has (a bool, 2 betas, ...)."""
    if not isinstance(given, dict) or set(given) != set(current):
        raise ValueError(f"hyperparameters {given!r}, expected {sorted(current)}")
    out: dict[str, Any] = {}
    for k, v in given.items():
        if isinstance(current[k], bool):
            if not isinstance(v, bool):
                raise ValueError(f"{k} is {v!r}, not true or false")
            out[k] = v
        elif isinstance(current[k], tuple):
            if not isinstance(v, list | tuple) or len(v) != len(current[k]):
                raise ValueError(f"{k} is {v!r}, not {len(current[k])} numbers")
            out[k] = [_number(k, b, 0, math.nextafter(1, 0)) for b in v]
        else:
            out[k] = _number(k, v, 0)
    if not out.get("lr", 1) > 0:
        raise ValueError("lr must be positive")
    return out


def _optimizer_state(
    header: dict[str, Any], arrays: dict[str, np.ndarray], optimizer: Optimizer
) -> dict[str, Any]:
    o = header.get("optimizer")
    if o is None:
        raise ValueError("it holds no optimizer state")
    if not isinstance(o, dict) or o.get("type") != type(optimizer).__name__:
        kind = o.get("type") if isinstance(o, dict) else o
        raise ValueError(f"its optimizer is {kind!r}, not {type(optimizer).__name__}")
    steps = o.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"optimizer steps is {steps!r}, not a count")
    buffers = o.get("buffers")
    params = optimizer.params
    if not isinstance(buffers, list) or len(buffers) != len(params):
        raise ValueError(f"optimizer buffers {buffers!r} do not match {len(params)} parameters")
    allowed = BUFFERS.get(type(optimizer).__name__)
    state = []
    for i, (names, p) in enumerate(zip(buffers, params)):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"optimizer buffers of parameter {i}: {names!r}")
        if names and allowed is not None and set(names) not in allowed:
            raise ValueError(f"optimizer buffers of parameter {i}: unknown set {names!r}")
        s = {}
        for n in names:
            arr = arrays[f"optim/{i}/{n}"]
            if arr.shape != p.shape:
                raise ValueError(f"optimizer buffer {i}/{n}: shape {arr.shape}, param {p.shape}")
            _finite_numbers(f"optimizer buffer {i}/{n}", arr)
            s[n] = arr
        state.append(s)
    hyper = _hyper(o.get("hyper"), optimizer.hyper())
    if isinstance(optimizer.hyper().get("betas"), tuple):
        hyper["betas"] = tuple(hyper["betas"])
    sd = {"type": o["type"], "hyper": hyper, "steps": steps, "state": state}
    # Files from before per-parameter steps lack the field: load_state_dict then gives
    # every parameter with state the global count, the one its buffers were built with.
    if "param_steps" in o:
        sd["param_steps"] = _counts(o["param_steps"], len(params))
    return sd


def _counts(given: Any, n: int) -> list[int]:
    """The file's per-parameter step counts: n whole numbers in [0, MAX_STEPS]."""
    if not isinstance(given, list) or len(given) != n:
        raise ValueError(f"optimizer param_steps {given!r} do not match {n} parameters")
    for k in given:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_STEPS:
            raise ValueError(f"optimizer param_steps holds {k!r}, not a count")
    return given


def _check_scheduler(sd: Any) -> None:
    if not isinstance(sd, dict):
        raise ValueError(f"scheduler state {sd!r}")
    _number("scheduler base_lr", sd.get("base_lr"), math.ulp(0))
    epoch = sd.get("last_epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"scheduler last_epoch is {epoch!r}, not a count")


def _architecture(model: Module) -> dict[str, Any] | None:
    try:
        return model.config()
    except NotImplementedError:
        return None
