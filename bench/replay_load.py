"""Many websocket clients replaying one long finished run at once, while REST is probed.

A run of --steps steps (per-step losses, test figures every epoch, a weights and a health
record every 100 steps) is written through the store, a real `gradscope serve` opened on
it, and --clients websocket clients each ask for a replay from the start ({"since": 0})
at the same moment. Meanwhile GET /api/runs/{id} is timed every 50 ms. Printed: events in
the run, seconds until the last reader had every event, whether every reader got every
event in order, and the REST latency percentiles over that time.

    .venv/bin/python bench/replay_load.py [--clients 200] [--steps 270000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _harness as H
from _server import Server, distribution, mnist_dir

SEQ = re.compile(r'"seq":(\d+)')


async def _replay(url: str, last: int) -> bool:
    from websockets.asyncio.client import connect

    seqs: list[int] = []
    # No client pings, and seqs found by a regex rather than a full parse: 200 readers in one
    # process must not starve their own event loop (and look dead to the server).
    async with connect(url, max_size=None, open_timeout=60, ping_interval=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"since": 0}))
        while not seqs or seqs[-1] < last:
            text = await asyncio.wait_for(ws.recv(), 300)
            batch = [int(x) for x in SEQ.findall(text)]
            if seqs or batch[0] == 1:
                seqs.extend(batch)
    return seqs == list(range(1, last + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--steps", type=int, default=270_000, help="about 300,000 events")
    args = ap.parse_args()
    from gradscope.server.store import Store
    from tests.server.test_history import write_run

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "data")
        run_id, _ = write_run(store, args.steps, record_every=100, truth=False)
        last = store.last_seqs([run_id])[run_id]
        store.close()
        server = Server(mnist_dir())
        server.data_dir = Path(tmp) / "data"
        with server:
            latencies: list[float] = []
            done = threading.Event()

            def probe() -> None:
                while not done.is_set():
                    t0 = time.monotonic()
                    server.http.get(f"{server.url}/api/runs/{run_id}", timeout=120)
                    latencies.append(1000 * (time.monotonic() - t0))
                    time.sleep(0.05)

            prober = threading.Thread(target=probe)
            prober.start()
            url = f"{server.ws_url}/ws/runs/{run_id}"
            t0 = time.monotonic()

            async def everyone() -> list[bool]:
                return await asyncio.gather(*(_replay(url, last) for _ in range(args.clients)))

            ok = asyncio.run(everyone())
            seconds = time.monotonic() - t0
            done.set()
            prober.join()
    d = distribution(latencies)
    print(
        H.table(
            [
                "clients",
                "events",
                "all replayed in s",
                "every event in order",
                "REST p50 ms",
                "p95 ms",
                "max ms",
                "probes",
            ],
            [
                [
                    args.clients,
                    last,
                    f"{seconds:.1f}",
                    all(ok),
                    f"{d['p50']:.0f}",
                    f"{sorted(latencies)[int(0.95 * (len(latencies) - 1))]:.0f}",
                    f"{d['max']:.0f}",
                    len(latencies),
                ]
            ],
        )
    )
    print(H.versions())


if __name__ == "__main__":
    main()
