"""Paced runs: steps per second that never change what is computed, a frame every step,
frames at pause, step, stop, finish and epoch ends, one-update health, PATCH live."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gradscope.server.runs.config import PRESETS, resolve_config
from gradscope.server.runs.loop import MAX_FRAMES_PER_SECOND, TrainingLoop
from gradscope.server.runs.trainers import build_trainer
from gradscope.server.store import Store
from tests.server.conftest import InProcess, Server

LIMITS = {"max_parameters": 10**6, "max_steps": 10**7}
FRAME = ("weights", "health", "graph_values", "boundary")


def train(tmp_path: Path, preset: str, **overrides: Any) -> tuple[float, list[dict[str, Any]]]:
    """Train in-process (no commands); (seconds, every event)."""
    config = resolve_config(preset, overrides, **LIMITS)
    store = Store(tmp_path / f"data-{time.monotonic_ns()}")
    run = store.create_run(
        config.model_dump(mode="json"),
        preset=preset,
        name=None,
        source="cli",
        total_steps=config.total_steps(),
    )
    t0 = time.perf_counter()
    assert TrainingLoop(store, run.id, build_trainer(config), config).run() == "finished"
    seconds = time.perf_counter() - t0
    events = store.events(run.id)
    store.close()
    return seconds, events


def losses(events: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(e["step"], e["data"]["train_loss"]) for e in events if "train_loss" in e["data"]]


def steps_of(events: list[dict[str, Any]], kind: str) -> list[int]:
    return sorted({e["step"] for e in events if e["type"] == kind})


def ratios(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {e["step"]: e["data"]["update_ratio"] for e in events if e["type"] == "health"}


@pytest.mark.parametrize(
    ("preset", "steps", "pace"), [("moons", 40, 60.0), ("napkin-average", 8, 20.0)]
)
def test_pace_never_changes_what_is_computed_and_every_step_gets_a_frame(
    tmp_path: Path, preset: str, steps: int, pace: float
) -> None:
    _, fast = train(tmp_path, preset, steps=steps, pace=None)
    paced_s, paced = train(tmp_path, preset, steps=steps, pace=pace)
    assert losses(paced) == losses(fast) and len(losses(fast)) == steps  # bit-identical
    assert paced_s >= 0.9 * steps / pace  # it took its time (a lower bound, never flaky)
    kinds = ["weights", "health", "graph_values"] + (["boundary"] if preset == "moons" else [])
    for kind in kinds:
        assert steps_of(paced, kind) == list(range(steps + 1)), kind  # the start's too
    # Each paced frame's update ratio is that step's one update: what a full-speed run
    # recording every step measures, and unknown (null) only before the first update.
    _, every = train(tmp_path, preset, steps=steps, pace=None, record={"every": 1})
    assert ratios(paced) == ratios(every)
    assert set(ratios(paced)[0].values()) == {None}
    assert all(v is not None for r in list(ratios(paced).values())[1:] for v in r.values())


def test_a_fast_pace_records_frames_at_a_display_rate(tmp_path: Path) -> None:
    pace = 40 * MAX_FRAMES_PER_SECOND  # 2,400 steps/s: one frame every 40 steps
    _, events = train(tmp_path, "xor", steps=400, pace=pace)
    frames = steps_of(events, "boundary")
    assert frames == list(range(0, 401, 40))  # not every 13-step epoch's end: too many


def test_health_shows_one_update_not_the_sum_since_the_last_frame(tmp_path: Path) -> None:
    _, every1 = train(tmp_path, "moons", steps=60, pace=None, record={"every": 1})
    _, every10 = train(tmp_path, "moons", steps=60, pace=None, record={"every": 10})
    one, ten = ratios(every1), ratios(every10)
    assert len(ten) >= 6 and set(ten) >= {0, 10, 13, 26, 39, 52}  # epochs (13 steps) end too
    for step in sorted(ten)[1:]:
        # The ratio of the step's own update, as the run recording every step saw it; the
        # old accumulation since the frame before was several times larger.
        assert ten[step] == one[step], step


def test_small_presets_last_20_to_60_seconds_and_mnist_runs_at_full_speed() -> None:
    for name, preset in PRESETS.items():
        c = preset.config
        if c.dataset.name == "mnist":
            assert c.pace is None, name
        else:
            assert 20 <= c.total_steps() / (c.pace or 0) <= 60, name


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pace": 0}, "pace"),
        ({"pace": -3}, "pace"),
        ({"pace": "fast"}, "pace"),
        ({"pace": True}, "pace"),
        ({"pace": 10**9}, "pace"),
        ({}, "pace"),
        ({"pace": 5, "speed": 2}, "speed"),
    ],
)
def test_bad_paces_are_422s_that_name_the_field(
    app: InProcess, body: dict[str, Any], field: str
) -> None:
    run = app.create("moons", steps=5)
    r = app.request("PATCH", f"/api/runs/{run['id']}", json=body)
    assert r.status_code == 422, r.text
    assert field in json.dumps(r.json()["detail"]), r.text


def test_nan_pace_is_a_422(app: InProcess) -> None:
    run = app.create("moons", steps=5)
    raw = b'{"pace": NaN}'
    r = app.request(
        "PATCH", f"/api/runs/{run['id']}", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "pace" in r.text, r.text


def frame_steps(server: Server, run_id: str) -> dict[str, int]:
    """The step of the latest snapshot of each frame kind the run has."""
    out = {}
    for kind in FRAME:
        r = server.request("GET", f"/api/runs/{run_id}/snapshots/{kind}")
        if r.status_code == 200:
            out[kind] = r.json()["step"]
    return out


def test_pause_step_pace_and_stop_each_leave_a_frame(module_server: Server) -> None:
    s = module_server
    run = s.create("moons", steps=100_000, pace=40)
    rid = run["id"]
    s.wait_for(rid, lambda r: r["state"] == "running" and r["step"] >= 20)
    t0, step0 = time.monotonic(), s.run(rid)["step"]
    time.sleep(1.0)
    rate = (s.run(rid)["step"] - step0) / (time.monotonic() - t0)
    assert 20 < rate < 60, rate  # about 40 steps a second

    paused = s.request("POST", f"/api/runs/{rid}/pause").json()
    assert paused["state"] == "paused"
    assert set(frame_steps(s, rid).values()) == {paused["step"]}  # the frame it waits at
    stepped = s.request("POST", f"/api/runs/{rid}/step", json={"n": 5}).json()
    assert stepped["step"] == paused["step"] + 5
    assert set(frame_steps(s, rid).values()) == {stepped["step"]}

    # Full speed from here, changed live: the config says so and the steps fly.
    patched = s.request("PATCH", f"/api/runs/{rid}", json={"pace": None})
    assert patched.status_code == 200 and patched.json()["config"]["pace"] is None
    s.request("POST", f"/api/runs/{rid}/resume")
    s.wait_for(rid, lambda r: r["step"] >= stepped["step"] + 2000, timeout=30)
    fast = s.request("PATCH", f"/api/runs/{rid}", json={"pace": 7.5}).json()
    assert fast["config"]["pace"] == 7.5
    stopped = s.request("POST", f"/api/runs/{rid}/stop").json()
    assert stopped["state"] == "stopped"
    assert set(frame_steps(s, rid).values()) == {stopped["step"]}
    # An ended run's pace cannot change.
    r = s.request("PATCH", f"/api/runs/{rid}", json={"pace": 3})
    assert r.status_code == 409 and "stopped" in r.json()["detail"]
    assert s.request("PATCH", "/api/runs/0123456789ab", json={"pace": 3}).status_code == 404


def test_a_run_can_start_paused_at_its_first_frame(module_server: Server) -> None:
    s = module_server
    rid = s.create("xor", steps=50, start_paused=True)["id"]
    run = s.wait_for(rid, lambda r: r["state"] == "paused")
    assert run["step"] == 0 and set(frame_steps(s, rid).values()) == {0}
    stepped = s.request("POST", f"/api/runs/{rid}/step", json={"n": 3}).json()
    assert stepped["step"] == 3 and set(frame_steps(s, rid).values()) == {3}
    s.request("POST", f"/api/runs/{rid}/resume")
    done = s.wait_for(rid, lambda r: r["state"] == "finished", timeout=30)
    assert set(frame_steps(s, rid).values()) == {done["step"]} and done["step"] == 50
