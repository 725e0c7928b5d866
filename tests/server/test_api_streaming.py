"""Websocket streaming: many clients, a frozen one, reconnects with `since`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from tests.server.conftest import Server, step_metrics, watch

STEPS = 6000


def test_twenty_clients_one_frozen_all_get_every_step(module_server: Server) -> None:
    """Nineteen clients read a run live while a twentieth never reads: every reader gets
    every step once, in order, and the frozen one is never dropped (it catches up from the
    store). How fast the watched run trains is for bench/viewers_paired.py: timing ratios
    are too noisy for a test."""
    server = module_server
    watched = server.create("moons", steps=STEPS)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def reader(i: int) -> None:
        try:
            _, events = watch(server.ws_url, watched["id"], timeout=180)
            results[i] = step_metrics(events)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(19)]
    for t in threads:
        t.start()
    # The twentieth client connects and never reads a single message.
    with connect(
        f"{server.ws_url}/ws/runs/{watched['id']}", open_timeout=30, max_size=None
    ) as frozen:
        done = server.wait_for(
            watched["id"], lambda r: r["state"] not in ("queued", "running"), timeout=180
        )
        assert done["state"] == "finished", done
        for t in threads:
            t.join(180)
        assert not any(t.is_alive() for t in threads), "a reader never saw the run finish"
        # Read the frozen client only now: it was never dropped, it catches up from the store.
        late: list[dict[str, Any]] = []
        json.loads(frozen.recv(timeout=30))  # hello
        deadline = time.monotonic() + 60
        while not any(e["type"] == "state" and e["data"]["state"] == "finished" for e in late):
            assert time.monotonic() < deadline, f"the frozen client got {len(late)} events"
            late.extend(json.loads(frozen.recv(timeout=30))["events"])
        assert step_metrics(late) == list(range(1, STEPS + 1))
    assert not errors, errors
    assert len(results) == 19
    for steps in results.values():
        assert steps == list(range(1, STEPS + 1)), "every client got every step once, in order"


def test_reconnect_with_since_resumes_without_gap(module_server: Server) -> None:
    server = module_server
    run = server.create("moons", steps=3000)
    rid = run["id"]
    first: list[dict[str, Any]] = []
    with connect(f"{server.ws_url}/ws/runs/{rid}", open_timeout=30) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["kind"] == "hello"
        deadline = time.monotonic() + 60
        while len(first) < 500:
            assert time.monotonic() < deadline, f"only {len(first)} events"
            first.extend(json.loads(ws.recv(timeout=10))["events"])
    last = first[-1]["seq"]
    _, rest = watch(server.ws_url, rid, since=last)
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))

    # The {"since": seq} message replays from there on an open connection too.
    with connect(f"{server.ws_url}/ws/runs/{rid}", open_timeout=30) as ws:
        json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"since": len(seqs) - 3}))
        tail: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not tail or tail[-1]["seq"] < len(seqs):
            assert time.monotonic() < deadline, f"the replay stopped at {tail[-1:]}"
            tail.extend(json.loads(ws.recv(timeout=10))["events"])
        assert [e["seq"] for e in tail][-3:] == [len(seqs) - 2, len(seqs) - 1, len(seqs)]


def _count_messages(
    ws_url: str, run_id: str, out: dict[int, tuple[int, int, list[int]]], i: int
) -> None:
    with connect(f"{ws_url}/ws/runs/{run_id}", open_timeout=30, max_size=None) as ws:
        json.loads(ws.recv(timeout=30))  # hello
        n, events = 0, []
        deadline = time.monotonic() + 120
        while not any(e["type"] == "state" and e["data"]["state"] == "finished" for e in events):
            assert time.monotonic() < deadline, f"{run_id} did not finish in {len(events)} events"
            events.extend(json.loads(ws.recv(timeout=60))["events"])
            n += 1
        out[i] = (n, len(events), step_metrics(events))


def test_a_crowded_run_gets_fewer_bigger_batches_and_every_step(
    tmp_path: Path, real_mnist: Path
) -> None:
    """Past crowd_clients watchers, a run's batches go out at most every
    crowd_interval * clients / crowd_clients seconds (here 0.5 * 3 / 2 = 0.75 s)."""
    env = {"GRADSCOPE_CROWD_CLIENTS": "2", "GRADSCOPE_CROWD_INTERVAL": "0.5"}
    server = Server(tmp_path / "data", env).start()
    try:
        run = server.create("moons", steps=STEPS, record={"every": 1_000_000})
        out: dict[int, tuple[int, int, list[int]]] = {}
        threads = [
            threading.Thread(target=_count_messages, args=(server.ws_url, run["id"], out, i))
            for i in range(3)
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        seconds = time.monotonic() - t0
        assert len(out) == 3
        for n, total, steps in out.values():
            assert steps == list(range(1, STEPS + 1))
            # One live batch per 0.75 s (uncrowded: one per 50 ms commit, ~15x as many), plus
            # a replay of what was committed before the client joined, 1000 events a message.
            assert n <= seconds / 0.75 + 2 + total / 1000, (n, seconds, total)
        record = server.run(run["id"])
        assert record["state"] == "finished"
    finally:
        server.kill()
