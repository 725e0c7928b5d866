"""The digit models /draw predicts with: the bundled ones, or a finished MNIST run's weights.

The bundled models are `server/digits/bundled/mnist.npz` (weights) + `mnist.json`
(architecture, input normalisation, where it came from), an MLP, and `mnist_cnn.npz` +
`.json`, a CNN, both written by `gradscope export-model`; loading them needs no store and
no training. A run's model is its final checkpoint: the run is looked up in the
store and the file is the store's checkpoint folder plus the name its last checkpoint event
recorded, never a path built from the request. Every file is read with allow_pickle=False.
The forward pass of an MLP is plain numpy (`gradscope.engine.inference.forward`); a CNN's is
the engine model's own, in eval mode (`gradscope.engine.inference.module_outputs`). A header's
architecture is counted before anything is built from it (`architecture_parameters`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.engine import nn
from gradscope.engine.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from gradscope.engine.inference import (
    Layer,
    forward,
    layer_outputs,
    mlp_layers,
    module_outputs,
    softmax_rows,
    stages,
)
from gradscope.server.digits import typical
from gradscope.server.digits.architecture import MAX_PARAMETERS, architecture_parameters
from gradscope.server.errors import Conflict, GradscopeError, NotFound, Unavailable
from gradscope.server.runs.data import MNIST_MEAN, MNIST_STD
from gradscope.server.store import RunRecord, Store
from gradscope.server.store.schema import RUN_ID

BUNDLED_ID = "bundled"
MODELS_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_BASE = MODELS_DIR / "mnist"  # mnist.npz + mnist.json
# Every bundled model by id, the picker's order: the MLP (the default), then the CNN.
BUNDLED = {BUNDLED_ID: BUNDLED_BASE, "bundled-cnn": MODELS_DIR / "mnist_cnn"}
CHECKPOINT_FILE = re.compile(r"^step-\d+\.npz$")
CACHE_SIZE = 8
IMAGE = (1, 1, 28, 28)  # one digit as a CNN reads it


class ModelError(GradscopeError, LookupError):
    """A model that cannot be used."""


class UnknownModel(ModelError, NotFound):
    """Neither 'bundled' nor the id of a stored run."""


class UnusableModel(ModelError, Conflict):
    """A run that is not a finished MNIST classifier, or whose checkpoint cannot be used."""


class BrokenModel(ModelError, Unavailable):
    """The bundled model's files are missing or broken: a broken install."""


@dataclass(frozen=True)
class DigitModel:
    """A digit classifier from 28x28 pixels to 10 logits, with its normalisation: an MLP as
    numpy layers, or a CNN (`net`, an engine model kept in eval mode; `layers` empty)."""

    id: str
    name: str
    layers: list[Layer]
    mean: float = 0.0
    std: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)
    net: nn.Sequential | None = None

    def _input(self, digit: np.ndarray) -> np.ndarray:
        shape = IMAGE if self.net is not None else (1, 784)
        x = digit.reshape(shape).astype(np.float32)
        return (x - np.float32(self.mean)) / np.float32(self.std)

    def probabilities(self, digit: np.ndarray) -> np.ndarray:
        """Softmax over the ten digits for one 28x28 image in [0, 1] (white on black)."""
        if self.net is not None:
            return softmax_rows(self.inside(digit)[-1][1][None])[0]
        return softmax_rows(forward(self.layers, self._input(digit)))[0]

    def inside(self, digit: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(name, activations) of every layer for one digit, the logits last: a conv or
        pool layer's are [channels, height, width]."""
        if self.net is not None:
            # graph=True: no process-wide switch from this thread (the net stays in eval).
            outs = module_outputs(self.net, self._input(digit), graph=True)
            return [(name, outs[i][0]) for name, i in stages(self.net)]
        outs = layer_outputs(self.layers, self._input(digit))
        names = [f"hidden {i + 1} ({act})" for i, (_, _, act) in enumerate(self.layers[:-1])]
        return [*zip([*names, "logits"], (o[0] for o in outs), strict=True)]


def activation_maps(inside: list[tuple[str, np.ndarray]], limit: int) -> list[dict[str, Any]]:
    """The layers for the API: each one's shape and values (4 decimals), at most `limit`
    values in all (GRADSCOPE_MAX_ACTIVATION_VALUES); a layer past it shows its first ones."""
    maps, left = [], limit
    for name, a in inside:
        flat = a.ravel()
        shown = min(flat.size, left)
        left -= shown
        values = np.round(flat[:shown].astype(np.float64), 4).tolist()
        maps.append({"name": name, "shape": list(a.shape), "shown": shown, "values": values})
    return maps


def numpy_layers(model: nn.Module) -> list[Layer]:
    """(weight, bias, activation) triples of an engine MLP, for the numpy forward pass."""
    layers = mlp_layers(model)
    if not layers or layers[0][0].shape[1] != 784 or layers[-1][0].shape[0] != 10:
        raise ValueError("not a digit classifier: it must map 784 pixels to 10 outputs")
    return layers


def is_cnn(model: nn.Module) -> bool:
    """Does the model hold conv layers (so the numpy MLP pass cannot run it)?"""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def digit_cnn(model: nn.Module) -> nn.Sequential:
    """An engine CNN that maps one 1x28x28 digit to 10 logits, put in eval mode for good;
    ValueError (naming the shapes) for any other model."""
    if not isinstance(model, nn.Sequential):
        raise ValueError("not a digit classifier: a CNN must be a Sequential of layers")
    model.eval()
    try:
        out = module_outputs(model, np.zeros(IMAGE, np.float32), graph=True)[-1]
    except (ValueError, TypeError, IndexError) as e:
        raise ValueError(f"not a digit classifier: a 1x28x28 digit does not fit it ({e})") from None
    if out.shape != (1, 10):
        raise ValueError(
            f"not a digit classifier: it maps a digit to {list(out.shape[1:])}, not 10"
        )
    return model


def digit_model(
    model: nn.Module, id: str, name: str, mean: float, std: float, info: dict[str, Any]
) -> DigitModel:
    """A DigitModel of an engine MLP (numpy layers) or CNN (the net in eval mode)."""
    if is_cnn(model):
        return DigitModel(id, name, [], mean, std, info, digit_cnn(model))
    return DigitModel(id, name, numpy_layers(model), mean, std, info)


def _normalisation(standardize: bool) -> tuple[float, float]:
    return (MNIST_MEAN, MNIST_STD) if standardize else (0.0, 1.0)


def load_bundled(base: Path = BUNDLED_BASE) -> DigitModel:
    """The model saved as BASE.npz + BASE.json (nn.load: allow_pickle=False)."""
    meta = json.loads(base.with_suffix(".json").read_text())
    architecture_parameters(meta["architecture"])
    model = nn.load(base)
    norm = meta.get("input", {}).get("normalize", {"mean": 0.0, "std": 1.0})
    source = meta.get("source", {})
    info = {"test_acc": source.get("test_acc"), "preset": source.get("preset"), "sizes": None}
    model_id = next((key for key, path in BUNDLED.items() if path == base), BUNDLED_ID)
    kind = "CNN" if is_cnn(model) else "MLP"
    name = f"bundled {kind} ({source.get('preset') or 'MNIST'})"
    digit = digit_model(model, model_id, name, norm["mean"], norm["std"], info)
    info["sizes"] = model_sizes(digit)
    return digit


def load_checkpoint_model(path: Path, max_parameters: int = MAX_PARAMETERS) -> nn.Module:
    """The engine model in a training checkpoint, read and checked by the engine's reader.

    CheckpointError (a ValueError) for a file that is too large, corrupt, not a checkpoint,
    whose architecture has more than max_parameters parameters (refused before it is built),
    or whose weights do not fit (or hold NaN) that architecture."""
    header, _ = read_checkpoint(path)
    architecture = header.get("architecture")
    if not isinstance(architecture, dict):
        raise CheckpointError(f"{path} records no architecture to rebuild the model from")
    try:
        architecture_parameters(architecture, max_parameters)
        model = nn.from_config(architecture)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its architecture cannot be built ({e})") from None
    # The header only names the architecture; load_checkpoint checks every weight against it.
    load_checkpoint(path, model)
    return model


def usable_run(store: Store, model_id: str) -> RunRecord:
    """The finished MNIST run named model_id, or UnknownModel / UnusableModel."""
    run = store.get_run(model_id) if RUN_ID.fullmatch(model_id) else None
    if run is None:
        raise UnknownModel(
            f"no model {model_id!r}: use 'bundled' or the id of a finished MNIST run"
        )
    config = run.config
    dataset = config.get("dataset", {}).get("name")
    if dataset != "mnist":
        raise UnusableModel(f"run {run.id} trained on {dataset}, not MNIST digits")
    if config.get("loss") != "cross_entropy":
        raise UnusableModel(
            f"run {run.id} trained with {config.get('loss')}: only cross-entropy runs "
            "give digit probabilities",
        )
    if run.state != "finished":
        raise UnusableModel(
            f"run {run.id} is {run.state}, not finished: only a finished run can predict"
        )
    return run


def checkpoint_path(store: Store, run: RunRecord) -> Path:
    """The run's final checkpoint: the store's folder + the file its last event recorded."""
    event = store.latest_event(run.id, "checkpoint")
    name = (event or {}).get("data", {}).get("file")
    if not isinstance(name, str) or not CHECKPOINT_FILE.fullmatch(name):
        raise UnusableModel(f"run {run.id} recorded no checkpoint to predict with")
    return store.checkpoint_dir(run.id) / name


def checkpoint_model(run: RunRecord, path: Path, max_parameters: int = MAX_PARAMETERS) -> nn.Module:
    """The digit classifier in a run's checkpoint, or UnusableModel saying why not."""
    try:
        model = load_checkpoint_model(path, max_parameters)
        digit_cnn(model) if is_cnn(model) else numpy_layers(model)
    except (OSError, ValueError) as e:  # CheckpointError is a ValueError
        raise UnusableModel(f"run {run.id}: its checkpoint cannot be used ({e})") from None
    return model


def run_model(
    store: Store, run: RunRecord, path: Path, max_parameters: int = MAX_PARAMETERS
) -> DigitModel:
    """A finished run's final weights as a DigitModel."""
    model = checkpoint_model(run, path, max_parameters)
    mean, std = _normalisation(run.config.get("dataset", {}).get("standardize", True))
    info: dict[str, Any] = {"preset": run.preset, "step": run.step}
    digit = digit_model(model, run.id, run.name, mean, std, info)
    info["sizes"] = model_sizes(digit)
    return digit


def model_sizes(model: DigitModel) -> list[int]:
    """Layer widths from the input on: an MLP's units, a CNN's maps (channels) then units."""
    if model.net is None:
        return [model.layers[0][0].shape[1], *(w.shape[0] for w, _, _ in model.layers)]
    return [784, *(len(a) for _, a in model.inside(np.zeros((28, 28), np.float32)))]


class ModelCache:
    """The bundled models (each loaded once) and the last few runs' models, thread-safe.
    A run's checkpoint whose architecture has more than max_parameters parameters is
    refused before it is built (the server passes GRADSCOPE_MAX_PARAMETERS)."""

    def __init__(
        self,
        size: int = CACHE_SIZE,
        bundled: dict[str, Path] | None = None,
        max_parameters: int = MAX_PARAMETERS,
    ) -> None:
        self.size, self.max_parameters = size, max_parameters
        self.bundled_bases = dict(BUNDLED if bundled is None else bundled)
        self._lock = threading.Lock()
        self._bundled: dict[str, DigitModel] = {}
        self._space: typical.DigitSpace | None = None
        self._runs: OrderedDict[tuple[str, str], DigitModel] = OrderedDict()

    def bundled(self, model_id: str = BUNDLED_ID) -> DigitModel:
        """A bundled model; BrokenModel if its files are missing or broken."""
        with self._lock:
            if model_id not in self._bundled:
                try:
                    self._bundled[model_id] = load_bundled(self.bundled_bases[model_id])
                except (OSError, ValueError, KeyError) as e:
                    raise BrokenModel(f"the bundled model cannot be loaded: {e}") from None
            return self._bundled[model_id]

    def digit_space(self) -> typical.DigitSpace:
        """The bundled digit space (is it a digit at all?); BrokenModel if it is broken."""
        with self._lock:
            if self._space is None:
                try:
                    self._space = typical.load()
                except (OSError, ValueError, KeyError) as e:
                    raise BrokenModel(f"the bundled digit space cannot be loaded: {e}") from None
            return self._space

    def get(self, store: Store, model_id: str | None) -> DigitModel:
        """The model named model_id (None: the bundled MLP); a ModelError when unusable."""
        if model_id is None or model_id in self.bundled_bases:
            return self.bundled(model_id or BUNDLED_ID)
        run = usable_run(store, model_id)
        path = checkpoint_path(store, run)
        key = (run.id, path.name)
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
        model = run_model(store, run, path, self.max_parameters)
        with self._lock:
            self._runs[key] = model
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)
        return model

    def listing(self, store: Store) -> list[dict[str, Any]]:
        """The bundled models, then every finished cross-entropy MNIST run, newest first."""
        models = []
        for model_id in self.bundled_bases:
            m = self.bundled(model_id)
            kind = "cnn" if m.net is not None else "mlp"
            models.append({"id": m.id, "name": m.name, "kind": "bundled", "net": kind, **m.info})
        for run in store.list_runs():
            c = run.config
            if (
                run.state == "finished"
                and c.get("dataset", {}).get("name") == "mnist"
                and c.get("loss") == "cross_entropy"
            ):
                model = c.get("model", {})
                models.append(
                    {
                        "id": run.id,
                        "name": run.name,
                        "kind": "run",
                        "net": "cnn" if model.get("kind") == "cnn" else "mlp",
                        "preset": run.preset,
                        "step": run.step,
                        "sizes": [784, *_conv_widths(model), *model.get("hidden", []), 10],
                        "test_acc": None,
                    }
                )
        return models


def _conv_widths(model: dict[str, Any]) -> list[int]:
    """A CNN config's maps per layer as model_sizes counts them: a conv's, then its pool's."""
    out = []
    for conv in model.get("conv", []) if model.get("kind") == "cnn" else []:
        out += [conv["channels"]] * (2 if conv.get("pool", 2) > 1 else 1)
    return out


def final_test_acc(store: Store, run_id: str) -> float | None:
    """The last test accuracy a run recorded (at an epoch's end), if any."""
    for e in reversed(store.events(run_id, types=("metrics",))):
        acc = e["data"].get("test_acc")
        if isinstance(acc, float):
            return acc
    return None


def export_model(store: Store, model_id: str, out: Path, name: str = "mnist") -> tuple[Path, Path]:
    """Write a finished MNIST run's final weights as OUT/NAME.npz + OUT/NAME.json."""
    run = usable_run(store, model_id)
    path = checkpoint_path(store, run)
    model = checkpoint_model(run, path)
    out.mkdir(parents=True, exist_ok=True)
    npz, js = nn.save(model, out / name)
    meta = json.loads(js.read_text())
    mean, std = _normalisation(run.config.get("dataset", {}).get("standardize", True))
    meta["input"] = {
        "shape": [28, 28],
        "range": "0..1, white digit on black, MNIST-framed (server/digits/preprocess.py)",
        "normalize": {"mean": mean, "std": std},
    }
    meta["labels"] = list(range(10))
    meta["source"] = {
        "run": run.id,
        "preset": run.preset,
        "step": run.step,
        "checkpoint": path.name,
        "test_acc": final_test_acc(store, run.id),
        "config": run.config,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    js.write_text(json.dumps(meta, indent=2) + "\n")
    for written in (npz, js):
        written.chmod(0o644)  # nn.save's temporary files start private
    return npz, js
