"""Checkpoints: a model's parameters and its optimizer's state in one .npz, never pickled."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.nn import Module, _atomic_write
from engine.optim import LRScheduler, Optimizer


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
        "format": "gradscope-checkpoint",
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


def load_checkpoint(
    path: str | Path,
    model: Module,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
) -> dict[str, Any]:
    """Restore what save_checkpoint wrote into model/optimizer/scheduler; returns the meta."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if header.get("format") != "gradscope-checkpoint":
        raise CheckpointError(f"{path} is not a gradscope checkpoint")
    try:
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        if optimizer is not None:
            if "optimizer" not in header:
                raise CheckpointError(f"{path} holds no optimizer state")
            o = header["optimizer"]
            state = [
                {b: arrays[f"optim/{i}/{b}"] for b in names} for i, names in enumerate(o["buffers"])
            ]
            if "betas" in o["hyper"]:
                o["hyper"]["betas"] = tuple(o["hyper"]["betas"])
            optimizer.load_state_dict(
                {"type": o["type"], "hyper": o["hyper"], "steps": o["steps"], "state": state}
            )
        if scheduler is not None and "scheduler" in header:
            scheduler.load_state_dict(header["scheduler"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {e}") from None
    return header.get("meta", {})


def _architecture(model: Module) -> dict[str, Any] | None:
    try:
        return model.config()
    except NotImplementedError:
        return None
