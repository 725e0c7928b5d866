"""The article's hand-worked graphs as presets (micrograd-expression, micrograd-neuron), and
GET /api/runs/{id}/graph/backprop on real runs (an in-process app, its workers real): the
article's numbers at step 0, the walk node by node, the nudge check, and bad input named."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gradscope.engine.backprop import MINUS, TIMES
from gradscope.server.runs.config import PRESETS, ConfigError, resolve_config
from gradscope.server.runs.trainers import build_trainer
from tests.server.conftest import InProcess, in_process

LIMITS = {"max_parameters": 10**6, "max_steps": 10**6}
# label: (data, grad) at step 0, as the article computes them by hand.
ARTICLE = {
    "micrograd-expression": {"a": (2.0, 6.0), "b": (-3.0, -4.0), "e": (-6.0, -2.0),
                             "c": (10.0, -2.0), "d": (4.0, -2.0), "f": (-2.0, 4.0),
                             "L": (-8.0, 1.0)},
    "micrograd-neuron": {"x1": (2.0, -3.0), "w1": (-3.0, 2.0), "x1*w1": (-6.0, 1.0),
                         "x2": (0.0, 1.0), "w2": (1.0, 0.0), "x2*w2": (0.0, 1.0),
                         "x1*w1 + x2*w2": (-6.0, 1.0), "b": (6.0, 1.0), "n": (0.0, 1.0),
                         "o": (0.0, 1.0)},
}  # fmt: skip


@pytest.mark.parametrize("preset", ARTICLE)
def test_the_step_zero_graph_is_the_articles(preset: str) -> None:
    config = resolve_config(preset, {"pace": None}, **LIMITS)
    assert config.start_paused and config.engine == "scalar"
    trainer = build_trainer(config)
    (graph,) = trainer.start_events()
    nodes = graph["data"]["nodes"]
    assert {n["label"]: (n["data"], n["grad"]) for n in nodes} == ARTICLE[preset]
    assert graph["data"]["scope"] == "step" and nodes[graph["data"]["root"]]["label"] in "Lo"
    # Training descends on the output itself: the leaves move by -lr * grad, the output falls.
    losses = [trainer.train_step() for _ in range(3)]
    assert losses[0] == ARTICLE[preset]["L" if "L" in ARTICLE[preset] else "o"][0]
    assert losses[0] > losses[1] > losses[2]
    (metrics,) = trainer.epoch_events()
    assert metrics["data"]["test_loss"] < losses[2]  # the output after the third step


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"engine": "tensor"}, "engine", "runs on the scalar engine"),
        ({"model": {"hidden": [4]}}, "model.hidden", "set hidden to []"),
        ({"model": {"start_weights": [1.0] * 4}}, "model.start_weights", "article's values"),
        ({"batch_size": 1}, "batch_size", "reads no data"),
        ({"model": {"kind": "resnet"}}, "model.kind", "micrograd-expression"),
    ],
)
def test_a_bad_article_config_names_its_field(overrides: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_config("micrograd-neuron", overrides, **LIMITS)
    assert e.value.field == field and words in e.value.message


def test_the_presets_count_their_leaves() -> None:
    assert PRESETS["micrograd-expression"].config.num_parameters() == 4  # a b c f
    assert PRESETS["micrograd-neuron"].config.num_parameters() == 5  # x1 w1 x2 w2 b


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    folder = tmp_path_factory.mktemp("backprop")
    with in_process(folder / "data", folder / "no-mnist") as a:
        yield a


@pytest.fixture(scope="module")
def runs(api: InProcess) -> Iterator[dict[str, str]]:
    """One run of each preset, paused at step 0 as they start (they hold both run slots)."""
    ids = {preset: api.create(preset)["id"] for preset in ARTICLE}
    try:
        for rid in ids.values():
            api.wait_for(rid, lambda r: r["state"] == "paused", timeout=60)
        yield ids
    finally:
        for rid in ids.values():
            api.request("POST", f"/api/runs/{rid}/stop")


def backprop(api: InProcess, rid: str, **params: Any) -> Any:
    return api.request("GET", f"/api/runs/{rid}/graph/backprop", params=params)


@pytest.mark.parametrize("preset", ARTICLE)
def test_the_route_walks_the_articles_graph(api: InProcess, runs: dict, preset: str) -> None:
    rid = runs[preset]
    r = backprop(api, rid, at=0)
    assert r.status_code == 200, r.text
    t = r.json()
    labels = [n.strip("()") for n in t["names"]]
    assert {k: (d, g) for k, d, g in zip(labels, t["data"], t["grad"])} == ARTICLE[preset]
    assert t["step"] == 0 and t["forward"] == list(range(len(labels)))
    assert [s["node"] for s in t["backward"]] == t["forward"][::-1]
    assert t["nudge"] is None
    # Every node's nudge agrees with its grad: the article's rise over run.
    for i, name in enumerate(labels):
        check = backprop(api, rid, at=0, node=i).json()["nudge"]
        assert check["agree"] and abs(check["slope"] - ARTICLE[preset][name][1]) < 1e-4, check


def test_the_route_explains_the_neuron_and_follows_the_step(api: InProcess, runs: dict) -> None:
    rid = runs["micrograd-neuron"]
    t = backprop(api, rid, at=0, node=8).json()  # n
    (term,) = next(s for s in t["backward"] if s["node"] == 8)["terms"]
    assert t["names"][8] == "n" and term["rule"] == f"n.grad += o.grad {TIMES} (1 {MINUS} o.data²)"
    assert (term["upstream"], term["local"], term["contribution"]) == (1.0, 1.0, 1.0)
    nudge = t["nudge"]
    assert nudge["node"] == 8 and nudge["grad"] == 1.0 and nudge["agree"]
    assert nudge["plus"] == pytest.approx(1e-4) and nudge["minus"] == pytest.approx(-1e-4)
    # Two steps later the leaves have moved: the walk is the graph at their new values.
    stepped = api.request("POST", f"/api/runs/{rid}/step", json={"n": 2}).json()
    assert stepped["step"] == 2
    later = backprop(api, rid).json()
    assert later["step"] == 2 and later["data"][-1] < 0.0
    assert backprop(api, rid, at=1).json()["step"] == 1


def test_bad_requests_are_named(api: InProcess, runs: dict) -> None:
    r = backprop(api, runs["micrograd-expression"], node=7)
    assert r.status_code == 422 and "7 nodes" in r.json()["detail"]
    assert backprop(api, "0123456789ab").status_code == 404
    for rid in runs.values():  # a slot for the tensor run
        api.request("POST", f"/api/runs/{rid}/stop")
    tensor = api.create("xor", steps=1)["id"]
    api.wait_for(tensor, lambda r: r["state"] == "finished", timeout=60)
    r = backprop(api, tensor)
    assert r.status_code == 415 and "scalar graphs" in r.json()["detail"]
