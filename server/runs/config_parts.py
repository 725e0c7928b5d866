"""The sections of a run's config (data set, model, optimizer, recording, regularization),
their shared base, and the limits they check; config.py puts them together in RunConfig."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from gradscope.engine.examples import TINY_XS
from gradscope.server.errors import Invalid
from gradscope.server.runs.sizes import (
    MNIST_TRAIN,
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
