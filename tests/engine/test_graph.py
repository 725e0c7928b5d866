"""engine.graph: the dashboard's JSON and the article's draw_dot picture."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gradscope.engine import Value
from gradscope.engine.graph import to_dict, to_dot

from .test_scalar import article_expression


def test_dot_has_every_label_with_data_and_grad() -> None:
    v = article_expression()
    v["L"].backward()
    dot = to_dot(v["L"])
    assert dot.startswith("digraph G {") and "rankdir=LR;" in dot
    expected = {
        "a": (2, 6),
        "b": (-3, -4),
        "c": (10, -2),
        "d": (4, -2),
        "e": (-6, -2),
        "f": (-2, 4),
        "L": (-8, 1),
    }
    for label, (data, grad) in expected.items():
        box = f'shape=record, label="{{ {label} | data {data:.4f} | grad {grad:.4f} }}"'
        assert box in dot, label
    ops = re.findall(r'_op \[shape=ellipse, label="([^"]+)"\]', dot)
    assert sorted(ops) == ["*", "*", "+"]
    # Every operand feeds its result's op node: a, b -> e's op; e, c -> d's op; d, f -> L's.
    assert len(re.findall(r"n\d+ -> n\d+_op;", dot)) == 6
    assert len(re.findall(r"n\d+_op -> n\d+;", dot)) == 3


def test_dot_is_deterministic() -> None:
    first = to_dot(article_expression()["L"])
    assert all(to_dot(article_expression()["L"]) == first for _ in range(5))


def test_dot_escapes_record_syntax_in_labels() -> None:
    x = Value(1.0, label='a|b{c}<d>"e"')
    dot = to_dot(x * 2)
    assert r"a\|b\{c\}\<d\>\"e\"" in dot


def test_dot_draws_a_repeated_operand_once() -> None:
    x = Value(3.0, label="x")
    assert to_dot(x * x).count("n0 -> n1_op;") == 1


def test_dict_round_trips_through_json() -> None:
    v = article_expression()
    v["L"].backward()
    d = to_dict(v["L"])
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    by_label = {n["label"]: n for n in d["nodes"]}
    assert by_label["L"]["op"] == "*" and by_label["a"]["op"] == ""
    assert (by_label["b"]["data"], by_label["b"]["grad"]) == (-3.0, -4.0)
    assert d["nodes"][d["root"]]["label"] == "L"
    ids = {n["id"] for n in d["nodes"]}
    assert len(ids) == 7 and all(c in ids and p in ids for c, p in d["edges"])
    edges = {(d["nodes"][c]["label"], d["nodes"][p]["label"]) for c, p in d["edges"]}
    assert edges == {("a", "e"), ("b", "e"), ("e", "d"), ("c", "d"), ("d", "L"), ("f", "L")}


def test_dict_carries_non_finite_values_as_strings() -> None:
    x = Value(float("inf"), label="x")
    y = x * 0.0  # inf * 0 = nan
    d = to_dict(y)
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert {n["label"]: n["data"] for n in d["nodes"]}["x"] == "inf"
    assert d["nodes"][d["root"]]["data"] == "nan"


def tensor_net_loss():
    import gradscope.engine.nn.functional as F
    from gradscope.engine import Tensor, manual_seed, nn

    manual_seed(0)
    m = nn.MLP([2, 3, 1], activation="tanh")
    loss = F.mse_loss(m(Tensor([[1.0, 2.0], [0.5, -1.0]])), [[1.0], [0.0]])
    loss.label = "loss"
    loss.backward()
    return m, loss


def test_tensor_graph_has_one_node_per_op_with_summaries() -> None:
    m, loss = tensor_net_loss()
    d = to_dict(loss)
    assert d["kind"] == "tensor" and json.loads(json.dumps(d, allow_nan=False)) == d
    ops = [n["op"] for n in d["nodes"] if n["op"]]
    assert ops == ["linear", "tanh", "linear", "mse_loss"]
    by_label = {n["label"]: n for n in d["nodes"] if n["label"]}
    w = by_label["0.weight"]
    assert w["shape"] == [3, 2] and w["dtype"] == "float32" and w["requires_grad"]
    weight = m.layers[0].weight
    assert w["data"]["values"] == [float(x) for x in weight.data.ravel()]
    assert w["grad"]["mean"] == pytest.approx(float(weight.grad.mean()))
    assert w["grad"]["max"] == pytest.approx(float(weight.grad.max()))
    x = d["nodes"][0]
    assert x["requires_grad"] is False and x["grad"] is None
    assert by_label["loss"]["grad"]["values"] == [1.0]


def test_big_tensors_carry_summaries_not_values() -> None:
    from gradscope.engine import Tensor

    t = Tensor(np.arange(65.0), requires_grad=True)
    s = (t * 2.0).sum()
    s.backward()
    d = to_dict(s)
    assert "values" not in d["nodes"][0]["data"]
    assert d["nodes"][0]["data"]["max"] == 64.0 and d["nodes"][0]["grad"]["std"] == 0.0
    nan = Tensor([np.nan, 1.0]) * 1.0
    assert to_dict(nan)["nodes"][-1]["data"]["values"] == ["nan", 1.0]


def test_tensor_dot_shows_shapes_and_values() -> None:
    _, loss = tensor_net_loss()
    dot = to_dot(loss)
    assert "0.weight | 3x2 float32 | data mean" in dot
    box = r"\{ loss \| scalar float32 \| data \[\d+\.\d{4}\] \| grad \[1\.0000\] \}"
    assert re.search(box, dot)
    assert dot.count("shape=ellipse") == 4


def test_scalar_mlp_nodes_are_grouped_by_layer() -> None:
    from collections import Counter

    from gradscope.engine.examples import TinyClassifier

    d = to_dict(TinyClassifier().loss())
    by_group = Counter(n["group"] for n in d["nodes"])
    # MLP(3, [4, 4, 1]) over 4 samples. Layer 0: 16 parameters, and per sample and neuron
    # 3 inputs, 3 products, 3 sums, 1 tanh; layer 1: 20 parameters, 4 + 4 + 1 per neuron
    # and sample (its inputs are layer 0's tanh); layer 2 likewise with one neuron.
    assert by_group == {
        "L0": 16 + 4 * 4 * 10,
        "L1": 20 + 4 * 4 * 9,
        "L2": 5 + 4 * 9,
        # per sample: the target's negation, y_pred - y, **2 and the running sum's +;
        # and sum()'s starting 0
        "loss": 4 * 4 + 1,
    }
    for n in d["nodes"]:
        if n["label"].startswith("L"):
            assert n["group"] == n["label"].split(".")[0]
        if n["op"] == "tanh":
            assert n["group"] in ("L0", "L1", "L2")
        if n["op"] == "**2":
            assert n["group"] == "loss"
    assert d["nodes"][d["root"]]["group"] == "loss"


def test_a_linear_output_and_its_loss_stay_apart() -> None:
    # y_pred - y adds a constant to the output layer's sum: not the layer's own pattern.
    from gradscope.engine.scalar import MLP

    mlp = MLP(2, [3, 1], activation="relu", output_activation="linear", seed=0)
    out = mlp([1.0, -2.0])
    loss = (out - 0.5) ** 2
    d = to_dict(loss)
    node = {n["id"]: n for n in d["nodes"]}
    root = node[d["root"]]
    assert root["group"] == "loss"
    (diff,) = (node[c] for c, p in d["edges"] if p == root["id"])
    assert diff["op"] == "+" and diff["group"] == "loss"
    (o,) = (node[c] for c, p in d["edges"] if p == diff["id"] and node[c]["op"])
    assert o["op"] == "+" and o["group"] == "L1"
    assert {n["group"] for n in d["nodes"]} == {"L0", "L1", "loss"}


def test_tensor_nodes_are_grouped_by_module() -> None:
    _, loss = tensor_net_loss()
    d = to_dict(loss)
    groups = [(n["label"] or n["op"], n["group"]) for n in d["nodes"]]
    assert groups == [
        ("", "0"),  # the input joins the layer that reads it
        ("0.weight", "0"),
        ("0.bias", "0"),
        ("linear", "0"),
        ("tanh", "0"),
        ("2.weight", "2"),
        ("2.bias", "2"),
        ("linear", "2"),
        ("loss", "loss"),
    ]


def test_unnamed_parameters_form_one_group() -> None:
    v = article_expression()
    assert {n["group"] for n in to_dict(v["L"])["nodes"]} == {"model"}


def test_every_node_carries_its_dot_record_box() -> None:
    for root in (article_expression()["L"], tensor_net_loss()[1]):
        d, dot = to_dict(root), to_dot(root)
        for n in d["nodes"]:
            assert f'n{n["id"]} [shape=record, label="{n["record"]}"];' in dot


def test_groups_come_from_the_model_as_data_when_given() -> None:
    from gradscope.engine.scalar import MLP

    mlp = MLP(2, [3, 1], activation="tanh", seed=0)
    layer_of = {p: f"layer{i}" for i, lay in enumerate(mlp.layers) for p in lay.parameters()}
    for p in layer_of:
        p.label = ""  # no names to read a layer from
    loss = (mlp([1.0, -2.0]) - 0.5) ** 2
    d = to_dict(loss, layer_of)
    groups = d["groups"]
    assert sorted(g["name"] for g in groups) == ["layer0", "layer1", "loss"]
    firsts = [g["nodes"][0] for g in groups]  # in order of first appearance
    assert firsts == sorted(firsts)
    params = [d["nodes"][i] for g in groups for i in g["params"]]
    assert len(params) == len(layer_of) == 9 + 4
    assert sorted(i for g in groups for i in g["nodes"]) == list(range(len(d["nodes"])))
    assert {n["group"] for n in d["nodes"] if n["op"] == "tanh"} == {"layer0", "layer1"}
    # without the mapping, unnamed leaves are no parameters: no layer is found
    assert {g["name"] for g in to_dict(loss)["groups"]} == {"loss"}


@pytest.mark.parametrize("size", [1, 7, 64, 65, 5000])
def test_summaries_match_numpys(size: int) -> None:
    from gradscope.engine.graph import summarize

    a = np.random.default_rng(size).normal(size=size).astype(np.float32)
    s = summarize(a)
    assert s is not None
    for key, f in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
        assert s[key] == pytest.approx(float(f(a.astype(np.float64))), rel=1e-4, abs=1e-6)
    assert ("values" in s) == (size <= 64)


def test_conv_layers_are_grouped_with_their_norm_activation_and_pooling() -> None:
    """A CNN's graph collapses to one box per layer: conv2d and batch_norm join their
    parameters' layer, and pooling, dropout and flatten join the layer they read."""
    from gradscope import engine
    from gradscope.engine import nn
    from gradscope.engine.nn import functional as F

    engine.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.1), nn.Flatten(), nn.Linear(2 * 4 * 4, 3), nn.ReLU(), nn.Linear(3, 2),
    )  # fmt: skip
    x = engine.from_numpy(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32))
    x.label = "input"
    loss = F.cross_entropy(model(x), np.array([0, 1]))
    # As the tensor trainer groups them (server/runs/trainers/cnn.py): a BatchNorm's
    # parameters belong to the conv layer before it.
    groups = {p: name.split(".")[0] for name, p in model.named_parameters()}
    groups |= {model[1].weight: "0", model[1].bias: "0"}
    d = to_dict(loss, groups)
    by_op = {n["op"]: n["group"] for n in d["nodes"] if n["op"]}
    assert by_op == {
        "conv2d": "0",
        "batch_norm": "0",
        "relu": "6",  # the last relu seen: the dense layer's
        "max_pool2d": "0",
        "dropout": "0",
        "flatten": "0",
        "linear": "8",  # the last linear: the output layer's
        "cross_entropy": "loss",
    }
    relus = [n["group"] for n in d["nodes"] if n["op"] == "relu"]
    assert relus == ["0", "6"]
    assert [g["name"] for g in d["groups"]] == ["0", "6", "8", "loss"]
    assert next(n for n in d["nodes"] if n["label"] == "input")["group"] == "0"
