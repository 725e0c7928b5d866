"""server.runs.config: run configs, the errors that name their field, presets, --set parsing."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradscope.engine.examples import NAPKIN_START_WEIGHTS, TINY_SEED, NapkinAverage, TinyClassifier
from gradscope.server.cli.commands import parse_overrides
from gradscope.server.runs.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    _part,
    field_path,
    resolve_config,
    validate_config,
)

LIMITS = {"max_parameters": 10_000_000, "max_steps": 1_000_000}


def resolve(preset: str | None, overrides: dict | None = None, **limits: int) -> RunConfig:
    return resolve_config(preset, overrides, **{**LIMITS, **limits})


def test_config_error_reads_field_colon_message() -> None:
    e = ConfigError("optimizer.lr", "must be > 0")
    assert str(e) == "optimizer.lr: must be > 0"
    assert (e.field, e.message) == ("optimizer.lr", "must be > 0")
    assert isinstance(e, ValueError)


def test_presets_validate_and_serialise() -> None:
    assert list(PRESETS) == [
        "napkin-average",
        "micrograd-classifier",
        "micrograd-expression",
        "micrograd-neuron",
        "moons",
        "circle",
        "xor",
        "spiral",
        "gauss",
        "mnist-mlp",
        "mnist-98",
        "mnist-cnn",
    ]
    featured = {name for name, p in PRESETS.items() if p.featured}
    assert featured == {"napkin-average", "micrograd-classifier"}
    for name, p in PRESETS.items():
        assert p.name == name and p.title and p.description
        data = json.loads(json.dumps(p.to_dict(), allow_nan=False))
        assert RunConfig.model_validate(data["config"]) == p.config  # round-trips
        assert resolve(name) == p.config


def test_article_presets_carry_the_examples_defaults() -> None:
    napkin, ex = PRESETS["napkin-average"].config, NapkinAverage()
    assert napkin.engine == "scalar" and napkin.model.hidden == [] and not napkin.model.bias
    assert napkin.model.start_weights == list(NAPKIN_START_WEIGHTS) == ex.weights
    assert (napkin.dataset.name, napkin.dataset.n, napkin.dataset.seed) == ("rectangles", 1000, 0)
    assert (napkin.loss, napkin.optimizer.lr, napkin.batch_size) == ("mse", ex.lr, None)
    assert napkin.total_steps() == 300 and napkin.num_parameters() == 4

    tiny, tc = PRESETS["micrograd-classifier"].config, TinyClassifier()
    assert tiny.engine == "scalar" and tiny.seed == TINY_SEED and tiny.optimizer.lr == tc.lr
    assert tiny.layer_sizes() == [3, 4, 4, 1] and tiny.model.output == "tanh"
    assert (tiny.loss, tiny.reduction, tiny.total_steps()) == ("mse", "sum", 100)
    assert tiny.num_parameters() == len(tc.model.parameters()) == 41


def test_mnist_preset_is_the_agreed_recipe() -> None:
    c = PRESETS["mnist-mlp"].config
    assert c.layer_sizes() == [784, 256, 128, 10] and c.model.activation == "relu"
    assert (c.loss, c.optimizer.name, c.optimizer.lr, c.batch_size) == (
        "cross_entropy",
        "adam",
        1e-3,
        64,
    )
    assert c.epochs == 3 and c.steps_per_epoch() == 938 and c.total_steps() == 3 * 938


def test_overrides_merge_deeply_into_the_preset() -> None:
    c = resolve("moons", {"optimizer": {"lr": 0.05}, "model": {"hidden": [8]}, "name": "mine"})
    assert c.optimizer.lr == 0.05 and c.optimizer.name == "adam"  # the rest of the group stays
    assert c.model.hidden == [8] and c.model.activation == "relu" and c.name == "mine"
    assert PRESETS["moons"].config.optimizer.lr == 0.01  # the preset itself is untouched


def test_config_from_overrides_alone() -> None:
    c = resolve(None, {"dataset": {"name": "xor"}, "loss": "bce", "epochs": 2, "batch_size": 50})
    assert c.engine == "tensor" and c.dataset.n == 200
    assert c.steps_per_epoch() == 4 and c.total_steps() == 8
    assert c.output_size() == 1 and c.num_parameters() == 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    with pytest.raises(ConfigError) as e:
        resolve(None, {"loss": "mse", "steps": 3})
    assert e.value.field == "dataset"


def test_steps_win_over_epochs() -> None:
    c = resolve("mnist-mlp", {"steps": 10})
    assert c.total_steps() == 10
    limited = resolve("mnist-mlp", {"dataset": {"mnist_train_limit": 1000}})
    assert limited.steps_per_epoch() == 16 and limited.total_steps() == 48


BAD = [
    ("moons", {"optimizer": {"lr": -0.1}}, "optimizer.lr", "greater than 0"),
    ("moons", {"optimizer": {"lr": 0}}, "optimizer.lr", "greater than 0"),
    ("moons", {"optimizer": {"lr": 11}}, "optimizer.lr", "less than or equal to 10"),
    ("moons", {"optimizer": {"lr": "fast"}}, "optimizer.lr", "valid number"),
    ("moons", {"optimizer": {"lr": True}}, "optimizer.lr", "valid number"),
    ("moons", {"optimizer": {"lr": float("nan")}}, "optimizer.lr", "finite"),
    ("moons", {"model": {"hidden": [0]}}, "model.hidden.0", "greater than or equal to 1"),
    ("moons", {"model": {"hidden": [8, 5000]}}, "model.hidden.1", "less than or equal to 4096"),
    ("moons", {"model": {"hidden": "big"}}, "model.hidden", "valid list"),
    ("moons", {"model": {"hidden": [4] * 17}}, "model.hidden", "at most 16"),
    ("moons", {"batch_size": 1.5}, "batch_size", "valid integer"),
    ("moons", {"batch_size": 0}, "batch_size", "greater than or equal to 1"),
    ("moons", {"optimzer": {"lr": 0.1}}, "optimzer", "unknown field"),
    ("moons", {"optimizer": {"momentun": 0.9}}, "optimizer.momentun", "unknown field"),
    ("moons", {"optimizer": {"name": "rmsprop"}}, "optimizer.name", "'sgd', 'adam' or 'adamw'"),
    ("moons", {"optimizer": {"nesterov": True}}, "optimizer.nesterov", "momentum > 0"),
    ("moons", {"optimizer": {"betas": [1.0, 0.9]}}, "optimizer.betas", "[0, 1)"),
    ("moons", {"dataset": {"name": "cifar"}}, "dataset.name", "'rectangles'"),
    ("moons", {"dataset": {"noise": -1}}, "dataset.noise", "greater than or equal to 0"),
    ("moons", {"dataset": {"n": 1}}, "dataset.n", "at least 2"),
    ("moons", {"steps": None}, "steps", "set steps or epochs"),
    ("moons", {"loss": "hinge", "model": {"output": "sigmoid"}}, None, None),  # fine
    ("moons", {"model": {"output": "tanh"}}, "model.output", "logits"),
    ("mnist-mlp", {"loss": "hinge"}, "loss", "two-class"),
    ("napkin-average", {"loss": "cross_entropy"}, "loss", "regression"),
    ("napkin-average", {"model": {"start_weights": [1.0]}}, "model.start_weights", "4 inputs"),
    ("micrograd-classifier", {"model": {"start_weights": [1.0] * 3}}, "model.start_weights", ""),
    ("mnist-mlp", {"engine": "scalar"}, "engine", "engine 'tensor'"),
    ("moons", {"engine": "scalar", "dataset": {"n": 5000}}, "engine", "<= 1000 samples"),
    ("moons", {"engine": "scalar", "model": {"hidden": [64, 64]}}, "engine", "4,482"),
    ("micrograd-classifier", {"optimizer": {"name": "adam"}}, "optimizer.name", "plain sgd"),
    ("micrograd-classifier", {"optimizer": {"momentum": 0.9}}, "optimizer.momentum", "plain"),
    (
        "micrograd-classifier",
        {"loss": "cross_entropy", "model": {"output": "linear"}},
        "loss",
        "mse or hinge",
    ),
    ("moons", {"steps": 2_000_000}, "steps", "limit of 1,000,000"),
    ("mnist-mlp", {"epochs": 2000}, "epochs", "limit of 1,000,000"),
    ("moons", {"record": {"boundary_grid": 5}}, "record.boundary_grid", "greater than"),
    ("moons", {"name": 5}, "name", "valid string"),
]


@pytest.mark.parametrize(("preset", "overrides", "field", "message"), BAD)
def test_errors_name_the_field(
    preset: str, overrides: dict, field: str | None, message: str | None
) -> None:
    if field is None:
        resolve(preset, overrides)
        return
    with pytest.raises(ConfigError) as e:
        resolve(preset, overrides)
    assert e.value.field == field, str(e.value)
    assert message in e.value.message
    assert str(e.value).startswith(f"{field}: ")


def test_unknown_preset_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as e:
        resolve("x")
    assert e.value.field == "preset"
    assert e.value.message.startswith("unknown preset 'x'; choose one of napkin-average, ")


@pytest.mark.parametrize("overrides", [["lr=1"], "lr=1", 5])
def test_overrides_must_be_an_object(overrides: object) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_config("moons", overrides, **LIMITS)  # type: ignore[arg-type]
    assert e.value.field == "overrides"
    with pytest.raises(ConfigError) as e:
        validate_config(overrides)
    assert e.value.field == "config"


def test_a_billion_parameters_is_refused_arithmetically() -> None:
    # The widest model the field limits allow: 16 layers of 4096 on 100x100 rectangles.
    huge = {
        "dataset": {"name": "rectangles", "size": 100, "n": 10, "test_n": 10},
        "model": {"hidden": [4096] * 16},
        "loss": "mse",
        "steps": 1,
    }
    tracemalloc.start()
    with pytest.raises(ConfigError) as e:
        resolve(None, huge)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert e.value.field == "model.hidden"
    assert "292,687,873 parameters" in e.value.message
    assert peak < 5_000_000  # counted, never allocated (no timing: machines are noisy)
    # 10^9 parameters need a layer wider than the field allows: refused even earlier.
    with pytest.raises(ConfigError) as e:
        resolve("mnist-mlp", {"model": {"hidden": [31_623, 31_623]}})
    assert e.value.field == "model.hidden.0"


def test_num_parameters_counts_weights_and_biases() -> None:
    c = resolve("mnist-mlp")
    assert c.num_parameters() == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    nobias = resolve("mnist-mlp", {"model": {"bias": False}})
    assert nobias.num_parameters() == 784 * 256 + 256 * 128 + 128 * 10
    mse = resolve("mnist-mlp", {"loss": "mse", "model": {"hidden": []}})
    assert mse.layer_sizes() == [784, 10]  # one-hot targets: an output per class
    bce = resolve("moons", {"loss": "bce", "model": {"hidden": []}})
    assert bce.layer_sizes() == [2, 1] and bce.num_parameters() == 3


def test_parse_overrides_nests_dotted_keys() -> None:
    got = parse_overrides(
        ["optimizer.lr=0.05", "model.hidden=[16,16]", "name=my run", "model.bias=false"]
    )
    assert got == {
        "optimizer": {"lr": 0.05},
        "model": {"hidden": [16, 16], "bias": False},
        "name": "my run",
    }
    assert parse_overrides(["batch_size=null", "x=a=b", "record.every=5"]) == {
        "batch_size": None,
        "x": "a=b",
        "record": {"every": 5},
    }
    c = resolve("moons", parse_overrides(["optimizer.lr=0.05", "model.hidden=[4]"]))
    assert c.optimizer.lr == 0.05 and c.model.hidden == [4]


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        (["optimizer.lr"], "overrides"),
        (["=3"], "overrides"),
        (["optimizer..lr=3"], "overrides"),
        (["model=1", "model.hidden=[2]"], "model"),
        (["model.hidden=[2]", "model=1"], "model"),
    ],
)
def test_parse_overrides_refuses_malformed_pairs(pairs: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_overrides(pairs)
    assert e.value.field == field


def test_every_field_is_documented_for_openapi() -> None:
    schema = RunConfig.model_json_schema()
    groups = [schema, *schema["$defs"].values()]
    for group in groups:
        for name, prop in group["properties"].items():
            assert prop.get("description"), f"{group.get('title')}.{name} has no description"
        assert group.get("additionalProperties") is False


@given(st.lists(st.text(max_size=6), min_size=1, max_size=4))
def test_field_paths_split_back_into_their_keys(keys: list[str]) -> None:
    # The path a ConfigError names is joined from _part()s: splitting it (for the 422's
    # "loc") gives the keys back, dots and quotes in them included.
    assert field_path(".".join(_part(k) for k in keys)) == keys


def test_a_dotted_unknown_key_is_named_whole() -> None:
    with pytest.raises(ConfigError) as e:
        resolve("moons", {"dataset": {"a.b": 1}})
    assert e.value.field == 'dataset."a.b"'
    assert field_path(e.value.field) == ["dataset", "a.b"]
