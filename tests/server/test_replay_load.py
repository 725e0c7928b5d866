"""Many websocket clients replaying a long run at once (issue 22): REST stays responsive and
every reader gets every event, in order, once. The full-size figures (200 clients, 300,000
events) are measured by bench/replay_load.py; this runs a tenth of that."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gradscope.server.store import Store
from tests.server.conftest import Server
from tests.server.test_history import write_run

CLIENTS = 20


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[tuple]:
    data = tmp_path_factory.mktemp("replay") / "data"
    store = Store(data)
    run_id, _ = write_run(store, 20_000, record_every=100, truth=False)
    last = store.last_seqs([run_id])[run_id]
    store.close()
    s = Server(data, {"GRADSCOPE_MNIST_DIR": str(real_mnist)}).start()
    try:
        yield s, run_id, last
    finally:
        s.stop()


async def replay_all(url: str, last: int) -> list[int]:
    """Connect, ask for everything from the start, and read until the last seq."""
    from websockets.asyncio.client import connect

    seqs: list[int] = []
    async with connect(url, max_size=None, open_timeout=30) as ws:
        json.loads(await ws.recv())  # the hello
        await ws.send(json.dumps({"since": 0}))
        while not seqs or seqs[-1] < last:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
            batch = [e["seq"] for e in msg["events"]]
            if not seqs and batch[0] != 1:
                continue  # live before the replay began (none on a finished run)
            seqs.extend(batch)
    return seqs


def test_many_replaying_clients_leave_rest_responsive(long_run: tuple) -> None:
    s, run_id, last = long_run
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            t0 = time.monotonic()
            assert s.request("GET", f"/api/runs/{run_id}", timeout=30).status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        url = f"{s.ws_url}/ws/runs/{run_id}"

        async def everyone() -> list[list[int]]:
            return await asyncio.gather(*(replay_all(url, last) for _ in range(CLIENTS)))

        # In a thread: a Playwright test earlier in this worker may hold a running loop here.
        with ThreadPoolExecutor(1) as pool:
            results = pool.submit(asyncio.run, everyone()).result(timeout=240)
    finally:
        done.set()
        prober.join(30)
    assert all(seqs == list(range(1, last + 1)) for seqs in results)  # all, in order, once
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    # Loose enough for a loaded CI host (the bench measures 76 ms at 200 clients); a replay
    # on the event loop made REST wait seconds (3.9 s at the median in the report).
    assert len(latencies) > 5 and p95 < 2.0, (p95, latencies[-5:])
