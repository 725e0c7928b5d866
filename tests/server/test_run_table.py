"""The run table's data: PATCH name and tags (and the 422s naming the field), each run's
final and best figures kept in its row, and old stores given tags and summaries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gradscope.server.store import Store
from gradscope.server.store.encoding import pack_losses
from tests.server.conftest import InProcess, in_process

UNKNOWN = "0123456789ab"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[InProcess]:
    """One app for the module: its tests each judge their own runs."""
    with in_process(tmp_path_factory.mktemp("table") / "data", real_mnist) as a:
        yield a


@pytest.fixture(scope="module")
def finished(shared: InProcess) -> dict[str, Any]:
    """A finished classification run."""
    run = shared.create("xor", steps=40)
    return shared.wait_for(run["id"], lambda r: r["state"] == "finished")


def series(app: InProcess, run_id: str, name: str) -> list[float]:
    r = app.request("GET", f"/api/runs/{run_id}/metrics", params={"names": name})
    return [float(v) for v in r.json()["series"][name]["value"]]


def test_patch_renames_and_tags_a_finished_run_and_the_list_shows_it(
    shared: InProcess, finished: dict[str, Any]
) -> None:
    rid = finished["id"]
    r = shared.request(
        "PATCH", f"/api/runs/{rid}", json={"name": "  lr sweep a ", "tags": ["sweep", "a", "sweep"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "lr sweep a" and r.json()["tags"] == ["sweep", "a"]
    listed = {x["id"]: x for x in shared.request("GET", "/api/runs").json()["runs"]}
    assert listed[rid]["name"] == "lr sweep a" and listed[rid]["tags"] == ["sweep", "a"]
    # Only what is given changes: tags alone keep the name; [] clears them.
    r = shared.request("PATCH", f"/api/runs/{rid}", json={"tags": []})
    assert r.json()["name"] == "lr sweep a" and r.json()["tags"] == []
    # A pace is refused for an ended run (409), and then nothing else changes either.
    r = shared.request("PATCH", f"/api/runs/{rid}", json={"pace": 3, "name": "other"})
    assert r.status_code == 409, r.text
    assert shared.run(rid)["name"] == "lr sweep a"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": 7}, "name"),
        ({"tags": [1]}, "tags.0"),
        ({"tags": "a"}, "tags"),
        ({"tags": ["ok", ""]}, "tags.1"),
        ({"tags": ["a,b"]}, "tags.0"),
        ({"tags": ["t" * 41]}, "tags.0"),
        ({"tags": [str(i) for i in range(21)]}, "tags"),
        ({"tags": None}, "tags"),
        ({"colour": "red"}, "colour"),
        ({}, "body"),
    ],
)
def test_bad_patches_are_422s_naming_the_field(
    shared: InProcess, finished: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    before = shared.run(finished["id"])
    r = shared.request("PATCH", f"/api/runs/{finished['id']}", json=body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]], r.text
    assert shared.run(finished["id"])["name"] == before["name"]  # unchanged


def test_patch_of_an_unknown_run_is_a_404_problem(shared: InProcess) -> None:
    r = shared.request("PATCH", f"/api/runs/{UNKNOWN}", json={"name": "x"})
    assert r.status_code == 404 and UNKNOWN in r.json()["detail"]


def test_each_run_carries_its_final_and_best_figures(
    shared: InProcess, finished: dict[str, Any]
) -> None:
    summary = shared.run(finished["id"])["summary"]
    for name, better in (("train_loss", min), ("test_loss", min), ("test_acc", max)):
        values = series(shared, finished["id"], name)
        assert summary[name]["final"] == values[-1], name
        assert summary[name]["best"] == better(values), name
    assert summary["train_loss"]["step"] == 40


def test_an_old_store_gets_tags_and_summaries_when_opened(tmp_path: Path) -> None:
    store = Store(tmp_path)
    rid = store.create_run({}, preset=None, name="old", source="cli", total_steps=4).id
    losses = [(s, 1.0 + s, 0, v) for s, v in ((1, 0.9), (2, 0.4), (3, 0.6))]
    store.append_events(rid, [pack_losses(losses)])
    store.close()
    # The file as version 3 left it: no tags or summary column.
    conn = sqlite3.connect(tmp_path / "gradscope.db")
    conn.execute("ALTER TABLE runs DROP COLUMN tags")
    conn.execute("ALTER TABLE runs DROP COLUMN summary")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = Store(tmp_path)
    try:
        run = store.get_run(rid)
        assert run is not None and run.tags == []
        assert run.summary == {"train_loss": {"final": 0.6, "step": 3, "best": 0.4}}
        # Later commits fold in: a better loss, and a later final.
        store.append_events(rid, [pack_losses([(4, 5.0, 0, 0.1), (5, 6.0, 0, 0.3)])])
        after = store.get_run(rid)
        assert after is not None
        assert after.summary["train_loss"] == {"final": 0.3, "step": 5, "best": 0.1}
        assert json.loads(json.dumps(after.to_dict()))["summary"] == after.summary
    finally:
        store.close()
