"""Run configuration: pydantic models (they are the API's docs), validation, presets.

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
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from gradscope.engine.examples import TINY_XS
from gradscope.server.datasets import DatasetError, read_meta
from gradscope.server.errors import Invalid
from gradscope.server.runs.presets import PRESET_SPECS
from gradscope.server.runs.sizes import (
    MNIST_TRAIN,
    conv_parameters,
    conv_shapes,
    memory_problem,
    run_memory,
)

DatasetName = Literal[
    "rectangles", "tiny", "circle", "xor", "gauss", "spiral", "moons", "plane", "csv", "mnist"
]
TOY_2D = ("circle", "xor", "gauss", "spiral", "moons")  # generated, classification
PLANE_SETS = (*TOY_2D, "plane", "csv")  # every set of 2-D points: features apply to these
MULTICLASS = ("gauss", "spiral")  # generated sets that take dataset.classes
# TensorFlow Playground's input features (engine.data.FEATURES computes them).
FeatureName = Literal["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"]
MAX_CLASSES = 10
MAX_PIXELS = 20_000_000  # rectangles: (n + test_n) * size^2 numbers, about 2 s to draw
SCALAR_MAX_PARAMETERS = SCALAR_MAX_SAMPLES = 1000
MAX_PACE = 1_000_000  # steps per second; beyond that pacing means nothing


class ConfigError(Invalid, ValueError):
    """A config that cannot run; `field` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def plain_text(value: str) -> str:
    """A text SQLite and JSON can hold: no lone surrogates (which UTF-8 cannot encode)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(plain_text)]


class _Model(BaseModel):
    # strict: a JSON true is not a 1, nor "yes" a bool, nor "0.1" a number.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class DatasetConfig(_Model):
    """Which data to train on."""

    name: DatasetName = Field(
        description="rectangles: the napkin article's pixel averages (regression); tiny: the "
        "micrograd article's four samples; circle/xor/gauss/spiral/moons: 2-D toy sets "
        "(gauss and spiral take dataset.classes); plane: a 2-D regression; csv: an uploaded "
        "set (dataset.id); mnist: handwritten digits (the real test split is used for testing)"
    )
    n: int = Field(200, ge=1, le=100_000, description="samples drawn for generated sets")
    noise: float = Field(0.1, ge=0, le=5, description="2-D sets: gaussian noise (std dev)")
    size: int = Field(2, ge=2, le=100, description="rectangles: pixels per side (inputs = size^2)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the generated data")
    test_n: int = Field(200, ge=1, le=100_000, description="held-out generated samples")
    standardize: bool = Field(
        True, description="mnist: shift and scale pixels to mean 0, std 1 (0.1307, 0.3081)"
    )
    mnist_train_limit: int | None = Field(
        None, ge=1, le=MNIST_TRAIN, description="mnist: train on the first N images only"
    )
    classes: int | None = Field(
        2,
        ge=2,
        le=MAX_CLASSES,
        description="gauss/spiral: classes (blobs, arms); csv: the file's (set by the server, "
        "null for an x1,x2,y regression)",
    )
    features: list[FeatureName] = Field(
        default_factory=lambda: ["x1", "x2"],
        min_length=1,
        max_length=7,
        description="2-D sets: the network's inputs, computed from the point (x1, x2)",
    )
    id: str | None = Field(
        None, pattern=r"^[0-9a-f]{32}$", description="csv: the uploaded set (GET /api/datasets)"
    )
    test_ratio: float = Field(
        0.2, ge=0.05, le=0.9, description="csv: the share of the rows held out for testing"
    )

    @model_validator(mode="after")
    def _sizes(self) -> DatasetConfig:
        if self.name in TOY_2D and (self.n < 2 or self.test_n < 2):
            raise ConfigError("n", f"the {self.name} set needs at least 2 samples per split")
        if self.name == "rectangles" and (self.n + self.test_n) * self.size**2 > MAX_PIXELS:
            raise ConfigError("n", f"(n + test_n) * size^2 pixels must be at most {MAX_PIXELS:,}")
        _check_2d(self)
        return self

    def input_size(self) -> int:
        """Features per sample."""
        if self.name in PLANE_SETS:
            return len(self.features)
        return {"rectangles": self.size**2, "tiny": len(TINY_XS[0]), "mnist": 784}[self.name]

    def num_classes(self) -> int | None:
        """Classes of a classification set; None for a regression (rectangles, plane)."""
        if self.name in (*MULTICLASS, "csv"):
            return self.classes
        return {"rectangles": None, "plane": None, "mnist": 10}.get(self.name, 2)

    def train_size(self) -> int:
        """Training samples."""
        if self.name == "mnist":
            return self.mnist_train_limit or MNIST_TRAIN
        return len(TINY_XS) if self.name == "tiny" else self.n


def _check_2d(d: DatasetConfig) -> None:
    """The 2-D options apply to 2-D sets only; an uploaded set needs its id."""
    if len(set(d.features)) != len(d.features):
        raise ConfigError("features", "each feature at most once")
    if d.name not in PLANE_SETS and d.features != ["x1", "x2"]:
        raise ConfigError("features", f"input features are for 2-D sets, not {d.name}")
    if d.name not in (*MULTICLASS, "csv") and d.classes != 2:
        raise ConfigError("classes", f"{d.name} has a fixed number of classes: leave it at 2")
    if d.name in MULTICLASS and d.classes is None:
        raise ConfigError("classes", f"{d.name} needs a number of classes (2 to {MAX_CLASSES})")
    if (d.name == "csv") != (d.id is not None):
        raise ConfigError("id", "an uploaded set (name 'csv') needs its id; only it has one")
    if d.name in MULTICLASS and d.classes and min(d.n, d.test_n) < d.classes:
        raise ConfigError("n", f"{d.classes} classes need at least {d.classes} samples per split")


class ConvLayerConfig(_Model):
    """One conv layer of a CNN: conv (stride 1), optional BatchNorm, the activation, max pool."""

    channels: int = Field(ge=1, le=256, description="output channels (feature maps)")
    kernel: int = Field(3, ge=1, le=11, description="square kernel side")
    padding: int = Field(0, ge=0, le=5, description="zeros added on each side")
    pool: int = Field(2, ge=1, le=4, description="max pooling window and stride (1: none)")
    batch_norm: bool = Field(False, description="BatchNorm2d between the conv and activation")


class ModelConfig(_Model):
    """A multi-layer perceptron (or a CNN: conv layers, then the perceptron); input and
    output widths come from the data set and loss."""

    kind: Literal["mlp", "cnn", "micrograd-expression", "micrograd-neuron"] = Field(
        "mlp",
        description="mlp: the network below; cnn: model.conv on the 28x28 image (image "
        "sets only), flattened into the hidden layers; micrograd-expression / "
        "micrograd-neuron: the second "
        "article's hand-worked L = (a*b + c)*f or o = tanh(x1*w1 + x2*w2 + b), its leaves "
        "the parameters, descended on its own output (scalar engine; reads no data)",
    )
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [16, 16],
        max_length=16,
        description="hidden layer widths; [] is a single linear layer (one neuron per output)",
    )
    conv: list[ConvLayerConfig] = Field(
        default_factory=list, max_length=8, description="cnn: the conv layers, in order"
    )
    activation: Literal["relu", "tanh", "sigmoid", "linear"] = Field(
        "relu", description="activation after every hidden (and conv) layer"
    )
    output: Literal["linear", "tanh", "sigmoid"] = Field(
        "linear", description="activation of the output layer (linear = logits)"
    )
    bias: bool = Field(True, description="give every neuron a bias")
    start_weights: list[float] | None = Field(
        None,
        max_length=4096,
        description="explicit starting weights of a single neuron (hidden = [], one output, "
        "scalar engine), e.g. the napkin article's 0.98, 0.4, 0.86, -0.08",
    )


class OptimizerConfig(_Model):
    """The update rule."""

    name: Literal["sgd", "adam", "adamw"] = Field("sgd", description="optimizer")
    lr: float = Field(0.1, gt=0, le=10, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd: momentum")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum (needs momentum > 0)")
    weight_decay: float | None = Field(
        None, ge=0, le=1, description="L2 (decoupled for adamw); None: 0, or 0.01 for adamw"
    )
    betas: tuple[float, float] = Field(
        (0.9, 0.999), strict=False, description="adam/adamw: decay rates (a 2-list)"
    )
    schedule: Literal["constant", "onecycle"] = Field(
        "constant",
        description="the lr per step: constant; onecycle: linear warm-up from 0 over the "
        "first `warmup` share of the steps, then linear decay to 0 at the last step",
    )
    warmup: float = Field(0.1, ge=0, le=1, description="onecycle: the warm-up share of steps")

    @model_validator(mode="after")
    def _check(self) -> OptimizerConfig:
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError("betas", "each beta must be in [0, 1)")
        if self.nesterov and self.momentum <= 0:
            raise ConfigError("nesterov", "Nesterov momentum needs momentum > 0")
        return self


class RecordConfig(_Model):
    """What the dashboard records, and how often."""

    every: int | None = Field(
        None, ge=1, le=1_000_000, description="record every k steps; None: adaptive (worker)"
    )
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="steps between checkpoints; None: every 10 s of training (worker)",
    )
    boundary_grid: int = Field(40, ge=10, le=100, description="2-D sets: decision grid side")
    max_graph_nodes: int = Field(
        2000, ge=10, le=100_000, description="scalar runs: graph a single sample beyond this"
    )


class RegularizationConfig(_Model):
    """TensorFlow Playground's regularization: rate * sum |w| (l1) or rate * sum w^2 (l2)
    over every weight (not the biases), added to the training loss."""

    kind: Literal["none", "l1", "l2"] = Field("none", description="none, l1 or l2")
    rate: float = Field(0.0, ge=0, le=10, description="the penalty's factor")


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
