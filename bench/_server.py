"""Shared plumbing for the server benchmarks: a real `gradscope serve` and websocket readers.

`Server` starts `python -m gradscope.server.cli serve --port P --data-dir TMP` on a free loopback
port (as tests/server/conftest.py does), with GRADSCOPE_MNIST_DIR passed through, and
drives it over REST with httpx. `read_streams` connects websocket clients to
/ws/runs/{id} (one asyncio loop, websockets' asyncio client, permessage-deflate as a
browser would ask) and keeps every raw message with the wall time it arrived; parsing
happens after the run, so a client's own JSON work never delays the next receive.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = str(ROOT.parent / "shared" / "mnist")
FINAL = ("finished", "stopped", "failed", "crashed", "interrupted")


def mnist_dir(cli_value: str | None = None) -> str:
    """--mnist-dir, else $GRADSCOPE_MNIST_DIR, else ../shared/mnist next to the repo."""
    return cli_value or os.environ.get("GRADSCOPE_MNIST_DIR") or DEFAULT_MNIST


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `gradscope serve` subprocess with its own temporary data dir (a context manager)."""

    def __init__(
        self, mnist: str, env: dict[str, str] | None = None, profile: Path | None = None
    ) -> None:
        self.profile = profile  # run the server under cProfile, writing its stats here
        self._tmp = tempfile.TemporaryDirectory(prefix="gradscope-bench-")
        self.data_dir = Path(self._tmp.name) / "data"
        self.log = Path(self._tmp.name) / "server.log"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "GRADSCOPE_MNIST_DIR": mnist,
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.http = httpx.Client(timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.port = free_port()
        cmd = [sys.executable]
        if self.profile is not None:
            cmd += ["-m", "cProfile", "-o", str(self.profile)]
        cmd += ["-m", "gradscope.server.cli", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if self.http.get(f"{self.url}/api/presets", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # uvicorn re-raises the signal after its shutdown: SIGINT (KeyboardInterrupt)
            # still lets cProfile write its stats, SIGTERM would not.
            self.proc.send_signal(signal.SIGINT if self.profile else signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.http.close()
        self._tmp.cleanup()

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by (the server process itself, its reaped children: the
        workers of finished runs), from /proc (Linux); (nan, nan) elsewhere."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan, math.nan
        tick = os.sysconf("SC_CLK_TCK")
        utime, stime, cutime, cstime = (int(x) / tick for x in fields[11:15])
        return utime + stime, cutime + cstime

    # -- REST -------------------------------------------------------------------------------
    def create(self, preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /api/runs {"preset", "config": overrides}; the new (queued) run, at full speed
        unless the overrides set a pace."""
        config = {"pace": None, **(overrides or {})}
        r = self.http.post(f"{self.url}/api/runs", json={"preset": preset, "config": config})
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/runs answered {r.status_code}: {r.text}")
        return r.json()

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.http.get(f"{self.url}/api/runs/{run_id}")
        r.raise_for_status()
        return r.json()

    def wait_final(self, run_id: str, timeout: float = 600.0, poll: float = 0.25) -> dict:
        """Poll GET /api/runs/{id} until the run reaches a final state; the run."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["state"] in FINAL:
                if run["state"] != "finished":
                    raise RuntimeError(f"run {run_id} ended {run['state']}: {run.get('error')}")
                return run
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} did not finish in {timeout:.0f} s: {run}")
            time.sleep(poll)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of the run (GET /api/runs/{id}/export?format=json)."""
        r = self.http.get(f"{self.url}/api/runs/{run_id}/export", params={"format": "json"})
        r.raise_for_status()
        return r.json()["events"]

    def delete(self, run_id: str) -> None:
        self.http.delete(f"{self.url}/api/runs/{run_id}")


# -- websocket readers ---------------------------------------------------------------------


@dataclass
class Stream:
    """What one websocket client received: the hello, then (arrival wall time, raw text)."""

    hello: dict[str, Any] = field(default_factory=dict)
    messages: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, event) for every event received, in order."""
        out = []
        for t, text in self.messages:
            msg = json.loads(text)
            out.extend((t, e) for e in msg.get("events", ()))
        return out


def _is_final(text: str) -> bool:
    if '"type":"state"' not in text:
        return False
    msg = json.loads(text)
    return any(
        e["type"] == "state" and e["data"].get("state") in FINAL for e in msg.get("events", ())
    )


async def _read_one(
    url: str, stream: Stream, ready: asyncio.Event, timeout: float, deflate: bool
) -> None:
    from websockets.asyncio.client import connect

    compression = "deflate" if deflate else None
    try:
        async with connect(url, max_size=None, open_timeout=30, compression=compression) as ws:
            stream.hello = json.loads(await ws.recv())
            ready.set()
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the run did not reach a final state in time")
                text = await asyncio.wait_for(ws.recv(), left)
                stream.messages.append((time.time(), text))  # stamped before any parsing
                if _is_final(text):
                    return
    except Exception as e:
        stream.error = f"{type(e).__name__}: {e}"
        ready.set()


async def _read_all(url: str, n: int, timeout: float, deflate: bool) -> list[Stream]:
    streams = [Stream() for _ in range(n)]
    readies = [asyncio.Event() for _ in range(n)]
    await asyncio.gather(
        *(_read_one(url, s, r, timeout, deflate) for s, r in zip(streams, readies))
    )
    return streams


def read_streams(
    ws_url: str, run_id: str, clients: int, timeout: float = 600.0, deflate: bool = True
) -> list[Stream]:
    """Connect `clients` readers to /ws/runs/{id}; return when each saw the final state.

    deflate: ask for permessage-deflate, as browsers do (the server then compresses every
    message for every client).
    """
    return asyncio.run(_read_all(f"{ws_url}/ws/runs/{run_id}", clients, timeout, deflate))


# -- small statistics -----------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, of already sorted values."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def distribution(values: Sequence[float]) -> dict[str, float]:
    """count, p50, p90, p99, max of `values`."""
    v = sorted(values)
    return {
        "count": len(v),
        "p50": percentile(v, 50),
        "p90": percentile(v, 90),
        "p99": percentile(v, 99),
        "max": v[-1] if v else math.nan,
    }
