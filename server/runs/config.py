"""Run configuration: RunConfig (its sections are in config_parts.py), the checks across
them, turning requests into configs, and the presets.

Every size a config implies (input and output width, parameter count, steps per epoch)
is computed here arithmetically, so a 10^9-parameter request is refused before anything
is allocated. Errors are `ConfigError`s that name the field by its dotted path.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

from gradscope.server.datasets import DatasetError, read_meta
from gradscope.server.runs.config_parts import (
    MAX_PACE,
    SCALAR_MAX_PARAMETERS,
    SCALAR_MAX_SAMPLES,
    DatasetConfig,
    ModelConfig,
    OptimizerConfig,
    RecordConfig,
    RegularizationConfig,
    _Model,
)

# Defined with the sections, and imported from here by the rest of the server.
from gradscope.server.runs.config_parts import PLANE_SETS as PLANE_SETS
from gradscope.server.runs.config_parts import TOY_2D as TOY_2D
from gradscope.server.runs.config_parts import ConfigError as ConfigError
from gradscope.server.runs.config_parts import Text as Text
from gradscope.server.runs.presets import PRESET_SPECS
from gradscope.server.runs.sizes import (
    conv_parameters,
    conv_shapes,
    memory_problem,
    run_memory,
)


class RunConfig(_Model):
    """Everything a training run needs, JSON-shaped."""

    name: Text | None = Field(None, max_length=200, description="display name of the run")
    dataset: DatasetConfig = Field(description="the data")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the network")
    engine: Literal["scalar", "tensor"] = Field(
        "tensor", description="scalar: the articles' Value engine (tiny problems); tensor: numpy"
    )
    loss: Literal["mse", "cross_entropy", "bce", "hinge"] = Field(
        description="mse; cross_entropy (softmax over classes); bce (one logit); hinge (+-1)"
    )
    reduction: Literal["mean", "sum"] = Field(
        "mean", description="average or add the per-sample losses (micrograd's article adds)"
    )
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="updates")
    batch_size: int | None = Field(
        None, ge=1, le=100_000, description="samples per step; None: the whole set (full batch)"
    )
    epochs: int | None = Field(None, ge=1, le=100_000, description="passes over the data")
    steps: int | None = Field(
        None, ge=1, le=100_000_000, description="optimizer steps (wins over epochs)"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the weights and data order")
    pace: float | None = Field(
        None,
        gt=0,
        le=MAX_PACE,
        description="steps per second, so a learner can watch every step (each gets a frame "
        "up to 60 a second); None: as fast as the machine goes. Never changes what is "
        "computed; PATCH /api/runs/{id} changes it live",
    )
    start_paused: bool = Field(
        False, description="start paused at step 0 (its frame drawn), to be stepped or played"
    )
    record: RecordConfig = Field(default_factory=RecordConfig, description="recording")
    regularization: RegularizationConfig = Field(
        default_factory=lambda: RegularizationConfig(),
        description="a penalty on the weights added to the training loss",
    )

    @model_validator(mode="after")
    def _cross_check(self) -> RunConfig:
        _cross_check(self)
        return self

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one pass over the training set."""
        n = self.dataset.train_size()
        return 1 if self.batch_size is None else math.ceil(n / self.batch_size)

    def total_steps(self) -> int:
        """Steps the run will take (steps, else epochs * steps per epoch)."""
        if self.steps is not None:
            return self.steps
        return (self.epochs or 0) * self.steps_per_epoch()

    def output_size(self) -> int:
        """Network outputs: one per class for cross_entropy (and mse on mnist), else one."""
        classes = self.dataset.num_classes()
        if classes and (self.loss == "cross_entropy" or (self.loss == "mse" and classes > 2)):
            return classes
        return 1

    def layer_sizes(self) -> list[int]:
        """[input, *hidden, output]; a CNN's input is its flattened conv output."""
        return [self._dense_input(), *self.model.hidden, self.output_size()]

    def _dense_input(self) -> int:
        if self.model.kind != "cnn":
            return self.dataset.input_size()
        _, c, h, w = conv_shapes(self.model.conv)[-1]
        return c * h * w

    def num_parameters(self) -> int:
        """Weights and biases (and BatchNorm's), counted without building anything."""
        if self.model.kind not in ("mlp", "cnn"):
            return ARTICLE_LEAVES[self.model.kind]
        sizes, bias = self.layer_sizes(), self.model.bias
        conv = conv_parameters(self.model.conv, bias) if self.model.kind == "cnn" else 0
        return conv + sum(a * b + (b if bias else 0) for a, b in itertools.pairwise(sizes))

    def memory(self) -> tuple[int, int]:
        """(bytes a run needs, of which activations): sizes.run_memory's estimate."""
        return run_memory(self)


def _cross_check(c: RunConfig) -> None:
    """The checks that span fields; each names the field to change."""
    if c.steps is None and c.epochs is None:
        raise ConfigError("steps", "set steps or epochs")
    classes = c.dataset.num_classes()
    if classes is None and c.loss != "mse":
        what = (
            "rectangles is a regression (pixel averages)"
            if c.dataset.name == "rectangles"
            else f"{c.dataset.name} is a regression"
        )
        raise ConfigError("loss", f"{what}: use 'mse'")
    if c.loss in ("bce", "hinge") and classes != 2:
        raise ConfigError(
            "loss", f"{c.loss} needs a two-class data set, {c.dataset.name} has {classes}"
        )
    reg = c.regularization
    if reg.kind == "none" and reg.rate:
        raise ConfigError("regularization.kind", "a rate without a penalty: choose l1 or l2")
    if c.loss in ("cross_entropy", "bce") and c.model.output != "linear":
        raise ConfigError("model.output", f"{c.loss} takes logits: set the output to 'linear'")
    if c.model.start_weights is not None:
        if c.model.hidden or c.output_size() != 1:
            raise ConfigError("model.start_weights", "only for a single neuron (hidden = [])")
        if len(c.model.start_weights) != c.dataset.input_size():
            raise ConfigError(
                "model.start_weights",
                f"{len(c.model.start_weights)} given, the neuron has "
                f"{c.dataset.input_size()} inputs",
            )
    if c.model.kind == "cnn" or c.model.conv:
        _cnn_check(c)
    elif c.model.kind != "mlp":
        _article_check(c)
        if reg.kind != "none":
            raise ConfigError("regularization.kind", "an article's expression has no weights")
    if c.engine == "scalar":
        _scalar_check(c)


def _cnn_check(c: RunConfig) -> None:
    """A CNN reads 28x28 images on the tensor engine, and each conv layer must fit its input."""
    if c.model.kind != "cnn":
        raise ConfigError(
            "model.conv", f"conv layers are for model.kind 'cnn', not {c.model.kind!r}"
        )
    if c.dataset.name != "mnist":
        raise ConfigError(
            "model.kind", f"a cnn reads images (mnist); {c.dataset.name} is not an image set"
        )
    if c.engine != "tensor":
        raise ConfigError("engine", "a cnn runs on the tensor engine")
    if not c.model.conv:
        raise ConfigError("model.conv", "a cnn needs at least one conv layer")
    if c.model.start_weights is not None:
        raise ConfigError("model.start_weights", "only for a single neuron (hidden = [])")
    try:
        conv_shapes(c.model.conv)
    except ValueError as e:
        field, message = e.args
        raise ConfigError(f"model.conv.{field}", message) from None


ARTICLE_LEAVES = {"micrograd-expression": 4, "micrograd-neuron": 5}  # a b c f; x1 w1 x2 w2 b


def _article_check(c: RunConfig) -> None:
    """An article's expression is a fixed scalar graph: nothing of an MLP applies to it."""
    if c.engine != "scalar":
        raise ConfigError("engine", f"model.kind {c.model.kind!r} runs on the scalar engine")
    fixed = f"model.kind {c.model.kind!r} is a fixed expression"
    if c.model.hidden:
        raise ConfigError("model.hidden", f"{fixed}: set hidden to [] (it has no layers)")
    if c.model.start_weights is not None:
        message = f"{fixed}: its leaves start at the article's values"
        raise ConfigError("model.start_weights", message)
    if c.batch_size is not None:
        raise ConfigError("batch_size", f"model.kind {c.model.kind!r} reads no data: leave it out")


def _scalar_check(c: RunConfig) -> None:
    """The scalar engine is the articles' plain gradient descent on tiny problems."""
    hint = "(or use engine 'tensor')"
    if c.dataset.name == "mnist" or c.dataset.train_size() > SCALAR_MAX_SAMPLES:
        raise ConfigError(
            "engine",
            f"the scalar engine is for small problems (<= {SCALAR_MAX_SAMPLES} samples, "
            f"<= {SCALAR_MAX_PARAMETERS} parameters): use engine 'tensor' for "
            f"{c.dataset.name} with {c.dataset.train_size():,} samples",
        )
    if c.num_parameters() > SCALAR_MAX_PARAMETERS:
        raise ConfigError(
            "engine",
            f"the scalar engine is for small problems (<= {SCALAR_MAX_PARAMETERS} parameters); "
            f"this model has {c.num_parameters():,}: use engine 'tensor'",
        )
    if c.loss not in ("mse", "hinge"):
        raise ConfigError("loss", f"the scalar engine trains with mse or hinge {hint}")
    if c.output_size() != 1:
        raise ConfigError(
            "dataset.classes", f"the scalar engine has one output: two classes {hint}"
        )
    opt = c.optimizer
    if opt.name != "sgd":
        raise ConfigError("optimizer.name", f"the scalar engine runs plain sgd {hint}")
    if opt.momentum or opt.weight_decay:
        field = "optimizer.momentum" if opt.momentum else "optimizer.weight_decay"
        raise ConfigError(field, f"the scalar engine runs plain gradient descent: set 0 {hint}")


# -- turning requests into configs ----------------------------------------------------


def _part(part: Any) -> str:
    """One step of a dotted field path; a key that is empty or holds a dot is JSON-quoted,
    so the path stays unambiguous (`dataset.""`, not `dataset.`)."""
    text = str(part)
    return text if text and "." not in text and '"' not in text else json.dumps(text)


_PART = re.compile(r'"(?:[^"\\]|\\.)*"|[^.]+')


def field_path(field: str) -> list[str]:
    """A dotted field path's steps, the inverse of joining _part()s (quoted keys unquoted)."""
    return [json.loads(p) if p.startswith('"') else p for p in _PART.findall(field)]


def _error_from(e: ValidationError) -> ConfigError:
    """The first pydantic error as a ConfigError with its dotted location."""
    err = e.errors()[0]
    loc = [_part(part) for part in err["loc"]]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        return ConfigError(".".join([*loc, cause.field]), cause.message)
    message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
    return ConfigError(".".join(loc) or "config", message)


def validate_config(data: Any) -> RunConfig:
    """A RunConfig from plain data, or a ConfigError naming the field."""
    if not isinstance(data, dict):
        raise ConfigError("config", f"must be an object, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise _error_from(e) from None


def deep_merge(base: dict, overrides: dict) -> dict:
    """base with overrides applied; nested dicts merge, everything else replaces."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config(
    preset: str | None,
    overrides: dict | None,
    *,
    max_parameters: int,
    max_steps: int,
    max_memory_mb: int | None = None,
    data_dir: Path | None = None,
) -> RunConfig:
    """The preset's config (or none) with overrides merged in, validated against the limits
    (and an uploaded set's sizes and classes filled in from its file in `data_dir`)."""
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError("overrides", f"must be an object, got {type(overrides).__name__}")
    base: dict = {}
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ConfigError(
                "preset", f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
            )
        base = PRESETS[preset].config.model_dump()
    merged = deep_merge(base, overrides or {})
    config = validate_config(merged)
    if config.dataset.name == "csv":
        config = validate_config(deep_merge(merged, {"dataset": _csv_sizes(config, data_dir)}))
    n = config.num_parameters()
    if n > max_parameters:
        raise ConfigError(
            "model.hidden",
            f"{n:,} parameters is more than this server's limit of {max_parameters:,}"
            " (GRADSCOPE_MAX_PARAMETERS)",
        )
    problem = None if max_memory_mb is None else memory_problem(config, max_memory_mb)
    if problem is not None:
        raise ConfigError(*problem)
    if config.total_steps() > max_steps:
        field = "steps" if config.steps is not None else "epochs"
        raise ConfigError(
            field,
            f"{config.total_steps():,} steps is more than this server's limit of {max_steps:,}"
            " (GRADSCOPE_MAX_STEPS)",
        )
    return config


def _csv_sizes(config: RunConfig, data_dir: Path | None) -> dict[str, Any]:
    """An uploaded set's split sizes and classes, from its sidecar (the file decides them)."""
    d = config.dataset
    if data_dir is None:
        raise ConfigError("dataset.id", "uploaded data sets need a server with a data dir")
    try:
        meta = read_meta(data_dir, d.id or "")
    except DatasetError:
        raise ConfigError(
            "dataset.id", f"no uploaded data set {d.id!r} (GET /api/datasets lists them)"
        ) from None
    test_n = min(meta["rows"] - 1, max(1, round(meta["rows"] * d.test_ratio)))
    return {"n": meta["rows"] - test_n, "test_n": test_n, "classes": meta["classes"]}


# -- presets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named, ready-to-run config."""

    name: str
    title: str
    description: str
    config: RunConfig
    featured: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form for GET /api/presets."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "featured": self.featured,
            "config": self.config.model_dump(mode="json"),
        }


PRESETS: dict[str, Preset] = {
    name: Preset(name, title, description, RunConfig.model_validate(cfg), featured)
    for name, title, description, cfg, featured in PRESET_SPECS
}
