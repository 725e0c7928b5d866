"""Websocket streaming: many clients, a frozen one, reconnects with `since`.

A client that connects without `since` gets the run so far in its hello (history and
frame) and then only what comes after hello.last_seq, live; one that says `since` is
replayed from there.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from tests.server.conftest import Server, step_metrics, watch

STEPS = 6000


def after_hello(hello: dict[str, Any], events: list[dict[str, Any]], total: int) -> None:
    """The events after a hello are every step after the hello's, once and in order; the
    hello's history covers the steps before them."""
    done = hello["run"]["step"]
    assert step_metrics(events) == list(range(done + 1, total + 1))
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(hello["last_seq"] + 1, hello["last_seq"] + 1 + len(seqs)))
    if done:
        assert hello["history"]["to"] >= done
        assert hello["history"]["series"]["train_loss"]["step"][0] == 1


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
            hello, events = watch(server.ws_url, watched["id"], timeout=180)
            after_hello(hello, events, STEPS)
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
        hello = json.loads(frozen.recv(timeout=30))
        deadline = time.monotonic() + 60
        while not any(e["type"] == "state" and e["data"]["state"] == "finished" for e in late):
            assert time.monotonic() < deadline, f"the frozen client got {len(late)} events"
            late.extend(json.loads(frozen.recv(timeout=30))["events"])
        after_hello(hello, late, STEPS)
    assert not errors, errors
    assert len(results) == 19  # each got every step after its hello once, in order


def test_reconnect_with_since_resumes_without_gap(module_server: Server) -> None:
    server = module_server
    run = server.create("moons", steps=3000)
    rid = run["id"]
    first: list[dict[str, Any]] = []
    with connect(
        f"{server.ws_url}/ws/runs/{rid}", open_timeout=30, max_queue=None, max_size=None
    ) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["kind"] == "hello"
        deadline = time.monotonic() + 60
        while len(first) < 500:
            assert time.monotonic() < deadline, f"only {len(first)} events"
            first.extend(json.loads(ws.recv(timeout=10))["events"])
    last = first[-1]["seq"]
    again, rest = watch(server.ws_url, rid, since=last)
    assert again["last_seq"] >= last  # the reconnect's own hello is newer; it resumes anyway
    seqs = [e["seq"] for e in first + rest]
    start = hello["last_seq"] + 1
    assert seqs == list(range(start, start + len(seqs))), "no gap, no duplicate"
    after_hello(hello, first + rest, 3000)
    end = seqs[-1]

    # The {"since": seq} message replays from there on an open connection too, also from 0:
    # every event once, in order, whatever was sent live before it was taken up.
    with connect(
        f"{server.ws_url}/ws/runs/{rid}", open_timeout=30, max_queue=None, max_size=None
    ) as ws:
        json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"since": end - 3}))
        tail: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not tail or tail[-1]["seq"] < end:
            assert time.monotonic() < deadline, f"the replay stopped at {tail[-1:]}"
            tail.extend(json.loads(ws.recv(timeout=10))["events"])
        assert [e["seq"] for e in tail] == [end - 2, end - 1, end]
        ws.send(json.dumps({"since": 0}))
        every: list[dict[str, Any]] = []
        while not every or every[-1]["seq"] < end:
            assert time.monotonic() < deadline, f"the replay stopped at {every[-1:]}"
            every.extend(json.loads(ws.recv(timeout=10))["events"])
        assert [e["seq"] for e in every] == list(range(1, end + 1))


def _count_messages(
    ws_url: str, run_id: str, out: dict[int, tuple[int, int, list[int]]], i: int
) -> None:
    with connect(
        f"{ws_url}/ws/runs/{run_id}", open_timeout=30, max_queue=None, max_size=None
    ) as ws:
        hello = json.loads(ws.recv(timeout=30))
        n, events = 0, []
        deadline = time.monotonic() + 120
        while not any(e["type"] == "state" and e["data"]["state"] == "finished" for e in events):
            assert time.monotonic() < deadline, f"{run_id} did not finish in {len(events)} events"
            events.extend(json.loads(ws.recv(timeout=60))["events"])
            n += 1
        after_hello(hello, events, STEPS)
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
            assert steps[-1] == STEPS  # every step after its hello: _count_messages checks
            # One live batch per 0.75 s (uncrowded: one per 50 ms commit, ~15x as many), plus
            # a replay of what was committed before it subscribed, 1000 events a message.
            assert n <= seconds / 0.75 + 2 + total / 1000, (n, seconds, total)
        record = server.run(run["id"])
        assert record["state"] == "finished"
    finally:
        server.kill()


def test_an_open_stream_closes_4404_when_its_run_is_deleted(server: Server) -> None:
    from websockets.exceptions import ConnectionClosed

    rid = server.create("moons", steps=1_000_000)["id"]
    server.wait_for(rid, lambda r: r["state"] == "running")
    with connect(
        f"{server.ws_url}/ws/runs/{rid}", open_timeout=30, max_queue=None, max_size=None
    ) as ws:
        assert json.loads(ws.recv(timeout=30))["kind"] == "hello"
        assert server.request("DELETE", f"/api/runs/{rid}").status_code == 204
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                ws.recv(timeout=10)  # live events until the hub sees the run gone
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4404, closed
            assert "deleted" in closed.rcvd.reason
        else:
            raise AssertionError("the stream stayed open after its run was deleted")
