"""Every event the product emits validates against server/runs/events.py, read back from the
store and sent on the websocket; and docs/events.md names every type and field declared there."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typing_extensions

from gradscope.server.runs.config import resolve_config
from gradscope.server.runs.events import EVENT_DATA, ParamStructure, validate_event
from gradscope.server.runs.loop import TrainingLoop
from gradscope.server.runs.messages import MESSAGES, validate_message
from gradscope.server.runs.trainers import build_trainer
from gradscope.server.store import Store

from .conftest import InProcess

LIMITS = {"max_parameters": 10**6, "max_steps": 10**6}
# The in-process app answers to its own address only (the Host check).
WS = InProcess.base_url.replace("http", "ws", 1)
DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
# One tiny run of each engine and kind of model; together they emit every event type.
RUNS = {
    "napkin": ("napkin-average", {"dataset": {"n": 30}, "steps": 20}),
    "micrograd": ("micrograd-classifier", {"steps": 10}),
    "moons": ("moons", {"steps": 30, "record": {"every": 5}}),
    "histograms": ("moons", {"steps": 5, "model": {"hidden": [64, 64]}}),
    "mnist": ("mnist-mlp", {"steps": 5, "dataset": {"mnist_train_limit": 500}}),
    "cnn": ("mnist-cnn", {"steps": 5, "dataset": {"mnist_train_limit": 500}}),
    # lr 10 on the napkin overflows a square within the steps: a failed state naming the op.
    "diverged": (
        "napkin-average",
        {"optimizer": {"lr": 10.0}, "dataset": {"n": 50}, "steps": 1000},
    ),
}


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, real_mnist: Path
) -> Iterator[tuple[Path, dict[str, str]]]:
    """A data dir holding one finished (or failed) run per RUNS entry; (dir, name -> id)."""
    data_dir = tmp_path_factory.mktemp("events") / "data"
    store = Store(data_dir)
    ids = {}
    try:
        for name, (preset, overrides) in RUNS.items():
            config = resolve_config(preset, {"pace": None, **(overrides or {})}, **LIMITS)
            run = store.create_run(
                config.model_dump(),
                preset=preset,
                name=name,
                source="cli",
                total_steps=config.total_steps(),
            )
            TrainingLoop(store, run.id, build_trainer(config, real_mnist), config).run()
            ids[name] = run.id
    finally:
        store.close()
    yield data_dir, ids


@pytest.fixture(scope="module")
def stored(recorded: tuple[Path, dict[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """Every run's events as the store reads them back."""
    data_dir, ids = recorded
    store = Store(data_dir)
    try:
        return {name: store.events(rid) for name, rid in ids.items()}
    finally:
        store.close()


def test_every_stored_event_validates_and_every_type_is_emitted(
    stored: dict[str, list[dict[str, Any]]],
) -> None:
    seen = set()
    for events in stored.values():
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        for e in events:
            validate_event(e)
            seen.add(e["type"])
    # `download` needs MNIST missing and a mirror (tests/static/test_download.py records it),
    # `intervention` a person (tests/server/test_interventions.py).
    assert seen == set(EVENT_DATA) - {"download", "intervention"}
    failed = stored["diverged"][-1]["data"]
    assert failed["state"] == "failed" and failed["op"] in {"**2", "*", "+"}, failed


def test_an_event_that_breaks_its_declaration_is_refused(
    stored: dict[str, list[dict[str, Any]]],
) -> None:
    weights = next(e for e in stored["napkin"] if e["type"] == "weights")
    validate_event(weights)
    broken = [
        {**weights, "data": {**weights["data"], "extra": 1}},
        {**weights, "data": {k: v for k, v in weights["data"].items() if k != "structure"}},
        {**weights, "type": "no_such_type"},
        {**weights, "seq": "1"},
    ]
    for event in broken:
        with pytest.raises((ValueError, KeyError)):
            validate_event(event)


@pytest.mark.timeout(120)
def test_every_websocket_message_validates(recorded: tuple[Path, dict[str, str]]) -> None:
    data_dir, ids = recorded
    with InProcess(data_dir) as app:
        for rid in ids.values():
            with app.client.websocket_connect(f"{WS}/ws/runs/{rid}") as ws:
                hello = ws.receive_json()
                validate_message(hello)  # its history and its frame's events too
                assert hello["kind"] == "hello" and hello["steps_per_epoch"] >= 1
                assert hello["run"]["state"] in ("finished", "failed")
                assert "train_loss" in hello["history"]["series"]
                # A finished run streams nothing more; a replay from 0 is every event.
                ws.send_json({"since": 0})
                got = 0
                while got < hello["last_seq"]:  # bounded: the mark above is the deadline
                    message = ws.receive_json()
                    validate_message(message)
                    got = message["events"][-1]["seq"]
        with app.client.websocket_connect(f"{WS}/ws/runs") as ws:
            runs = ws.receive_json()
            validate_message(runs)
            assert {r["id"] for r in runs["runs"]} == set(ids.values())


def test_hello_carries_the_configs_steps_per_epoch(recorded: tuple[Path, dict[str, str]]) -> None:
    from gradscope.server.runs.config import RunConfig
    from gradscope.server.web.api.ws import steps_per_epoch

    data_dir, ids = recorded
    store = Store(data_dir)
    try:
        run = store.get_run(ids["moons"])
        assert run is not None
    finally:
        store.close()
    expected = RunConfig.model_validate(run.config).steps_per_epoch()
    assert expected > 1 and steps_per_epoch(run.config) == expected
    assert steps_per_epoch({"not": "a config"}) is None


# -- the structure of the parameters ---------------------------------------------------------


def structure_of(events: list[dict[str, Any]]) -> dict[str, ParamStructure]:
    kinds = ("weights", "histograms")
    return next(e for e in events if e["type"] in kinds)["data"]["structure"]


def test_the_napkin_neuron_is_one_unit_of_one_layer(
    stored: dict[str, list[dict[str, Any]]],
) -> None:
    structure = structure_of(stored["napkin"])
    weights = next(e for e in stored["napkin"] if e["type"] == "weights")["data"]
    assert set(structure) == set(weights["params"])
    assert structure["w2"] == {"layer": 0, "unit": 0, "input": 2, "kind": "weight"}


def test_the_scalar_mlp_names_layer_unit_and_input(
    stored: dict[str, list[dict[str, Any]]],
) -> None:
    structure = structure_of(stored["micrograd"])
    assert structure["L0.N1.w2"] == {"layer": 0, "unit": 1, "input": 2, "kind": "weight"}
    assert structure["L2.N0.b"] == {"layer": 2, "unit": 0, "input": None, "kind": "bias"}
    # MLP(3, [4, 4, 1]): 16 + 20 + 5 parameters.
    assert len(structure) == 41


@pytest.mark.parametrize("run", ["moons", "histograms"])
def test_tensor_parameters_are_whole_matrices_of_their_layer(
    stored: dict[str, list[dict[str, Any]]], run: str
) -> None:
    structure = structure_of(stored[run])
    layers = sorted({s["layer"] for s in structure.values()})
    assert layers == [0, 1, 2]  # three Linear modules, between two activations
    assert structure["2.weight"] == {"layer": 1, "unit": None, "input": None, "kind": "weight"}
    assert structure["4.bias"]["kind"] == "bias" and structure["4.bias"]["layer"] == 2


def test_graph_groups_list_every_node_once_in_order_of_appearance(
    stored: dict[str, list[dict[str, Any]]],
) -> None:
    for events in stored.values():
        graph = next(e for e in events if e["type"] == "graph")["data"]
        nodes, groups = graph["nodes"], graph["groups"]
        assert sorted(i for g in groups for i in g["nodes"]) == [n["id"] for n in nodes]
        firsts = [g["nodes"][0] for g in groups]
        assert firsts == sorted(firsts)
        for g in groups:
            assert all(nodes[i]["group"] == g["name"] for i in g["nodes"])
            assert set(g["params"]) <= set(g["nodes"])
            assert all(not nodes[i]["op"] for i in g["params"])
        # each record is the box the DOT source draws for that node
        for n in nodes:
            assert f'n{n["id"]} [shape=record, label="{n["record"]}"];' in graph["dot"]


# -- docs/events.md ----------------------------------------------------------------------------


def _fields(kind: Any) -> set[str]:
    """A TypedDict's field names, and those of the TypedDicts inside it."""
    names: set[str] = set()
    hints = typing.get_type_hints(kind)
    names |= set(hints)
    stack = list(hints.values())
    while stack:
        t = stack.pop()
        if typing_extensions.is_typeddict(t):
            inner = typing.get_type_hints(t)
            names |= set(inner)
            stack.extend(inner.values())
        stack.extend(typing.get_args(t))
    return names


def _rows(text: str) -> dict[str, str]:
    """The types table of docs/events.md: type -> the text of its rows."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\| `(\w+)` \|", line)
        if m:
            rows[m.group(1)] = rows.get(m.group(1), "") + line
    return rows


def test_the_doc_names_every_event_type_and_field() -> None:
    rows = _rows(DOC.read_text())
    missing = []
    for kind, datas in EVENT_DATA.items():
        if kind not in rows:
            missing.append(kind)
            continue
        for data in datas:
            missing += [f"{kind}.{f}" for f in _fields(data) if f'"{f}"' not in rows[kind]]
    assert not missing, f"docs/events.md lacks {missing}"


def test_the_doc_names_every_websocket_message_and_field() -> None:
    text = DOC.read_text()
    protocol = text[text.index("## Websocket protocol") :]
    missing = [
        f"{kind}.{f}"
        for kind, message in MESSAGES.items()
        for f in typing.get_type_hints(message)
        if f'"{f}"' not in protocol
    ]
    assert not missing, f"docs/events.md's protocol lacks {missing}"
