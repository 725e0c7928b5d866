"""The servers the tests talk to, each on its own data dir.

- `Server`: a real `gradscope serve` in a subprocess on a loopback port (real uvicorn, real
  websockets, real processes): for streaming, faults, restarts and the command line.
- `InProcess`: the same app (`create_app`) in this process, reached through httpx over ASGI
  (Starlette's TestClient runs its lifespan, so the store, the run manager with its worker
  processes and the hub are all real): for validation and error tests, which need no socket
  and no server start-up.

Both have the same REST helpers (`Api`). Fixtures: `server` (a real server per test: for tests
that kill, restart or otherwise own it), `module_server` (one real server a module's tests
share) and `app` (an in-process app per test).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[2]


def integrity(data_dir: Path) -> str:
    """PRAGMA integrity_check of a data dir's database, without opening a Store (which
    would migrate it): "ok" when the file is whole."""
    con = sqlite3.connect(data_dir / "gradscope.db")
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing: each request sends only the cookies it is given."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


# One client for every request to a real server. httpx.request() would build a client, and
# with it an SSL context, per call: 0.2 s of CPU each, which the polling loops paid many times a
# second. As with httpx.request(), no state carries from one request to the next: no cookies,
# and no keep-alive (each request opens its own connection, so none outlives a server the test
# kills or restarts).
HTTP = httpx.Client(
    timeout=60, limits=httpx.Limits(max_keepalive_connections=0), cookies=no_cookies()
)


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A loopback HTTP handler for stand-ins of what we do not own (a download mirror)."""

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_service(handler: type[QuietHandler]) -> Iterator[str]:
    """`handler` served on a free loopback port in a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """REST helpers over `request`, which a subclass provides."""

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError

    def create(self, preset: str | None = None, **config: Any) -> dict[str, Any]:
        """A run of the preset with config overrides, at full speed unless a pace is given
        (the small presets are paced for watching: 20-60 s a run)."""
        body: dict[str, Any] = {"preset": preset}
        if preset is not None:
            config.setdefault("pace", None)
        if config:
            body["config"] = config
        r = self.request("POST", "/api/runs", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.request("GET", f"/api/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, run_id: str, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if predicate(run):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; run is {run}")
            time.sleep(0.05)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        r = self.request("GET", f"/api/runs/{run_id}/export", params={"format": "json"})
        assert r.status_code == 200, r.text
        return r.json()["events"]


class Server(Api):
    """One server process; start/kill it as the test needs, the data dir stays."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The server's command line (subclasses may run another)."""
        serve = ["serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        return [sys.executable, "-m", "gradscope.server.cli", *serve]

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra subprocess.Popen arguments (subclasses: user, preexec_fn, ...)."""
        return {}

    def ready(self, response: httpx.Response) -> bool:
        """Whether the answer to GET /api/presets means the server is up."""
        return response.status_code == 200

    def start(self, timeout: float = 60.0, same_port: bool = False) -> Server:
        if not (same_port and self.port):
            self.port = free_port()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
                **self.popen_kwargs(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if self.ready(HTTP.get(f"{self.url}/api/presets", timeout=2)):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return HTTP.request(method, f"{self.url}{path}", **kwargs)


class InProcess(Api):
    """`create_app(settings)` in this process on its own data dir, through an ASGI client.

    A context manager: entering runs the app's lifespan (store, run manager, hub), leaving
    shuts it down (workers see their pipe close and exit). `settings` are Settings fields;
    GRADSCOPE_* variables fill the rest, as for `gradscope serve`.
    """

    # An address literal: the Host check lets it through, as it does 127.0.0.1:PORT.
    base_url = "http://127.0.0.1:8000"

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        # Imported here: the tests that only start servers do not load the app.
        from fastapi.testclient import TestClient

        from gradscope.server.settings import Settings
        from gradscope.server.web.app import create_app

        self.data_dir = data_dir
        self.settings = Settings.from_env(data_dir=data_dir, **settings)
        self.app = create_app(self.settings)
        self.client = TestClient(self.app, base_url=self.base_url, cookies=no_cookies())

    def __enter__(self) -> InProcess:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)


FINAL = {"finished", "stopped", "failed"}


def watch(
    ws_url: str,
    run_id: str,
    until_final: bool = True,
    timeout: float = 120.0,
    since: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a run's websocket until it reaches a final state; (hello, events): every event
    of the run (a replay asked for after the hello), or those after `since` when given."""
    path = f"{ws_url}/ws/runs/{run_id}" + (f"?since={since}" if since is not None else "")
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with connect(path, open_timeout=30, max_queue=None, max_size=None) as ws:
        hello = json.loads(ws.recv(timeout=30))
        # A new client gets the history summarised, then live events: ask for a replay
        # from the start, and skip what comes live before it.
        replaying = since is None and hello["last_seq"] > 0
        if replaying:
            ws.send(json.dumps({"since": 0}))
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            assert msg["kind"] == "events", msg
            if replaying and msg["events"][0]["seq"] != 1:
                continue
            replaying = False
            events.extend(msg["events"])
            if until_final and any(
                e["type"] == "state" and e["data"]["state"] in FINAL for e in msg["events"]
            ):
                return hello, events
    raise AssertionError(f"timed out; got {len(events)} events")


def step_metrics(events: list[dict[str, Any]]) -> list[int]:
    """Steps of the per-step training-loss events, in arrival order."""
    return [e["step"] for e in events if e["type"] == "metrics" and "train_loss" in e["data"]]


@contextlib.contextmanager
def started(server: Server) -> Iterator[Server]:
    """The server, started; stopped afterwards."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def live_server(tmp_path: Path, mnist: Path) -> Iterator[Server]:
    """A started server on its own data dir (two runs at once), stopped afterwards."""
    env = {"GRADSCOPE_MNIST_DIR": str(mnist), "GRADSCOPE_MAX_CONCURRENT": "2"}
    s = Server(tmp_path / "data", env).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def server(tmp_path: Path, real_mnist: Path) -> Iterator[Server]:
    """A real server of the test's own (two runs at once)."""
    with live_server(tmp_path, real_mnist) as s:
        yield s


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    """A real server that a module's tests share (two runs at once): for tests that leave
    the server as they found it and judge only their own runs."""
    with live_server(tmp_path_factory.mktemp("module"), real_mnist) as s:
        yield s


@contextlib.contextmanager
def in_process(data_dir: Path, mnist: Path, **settings: Any) -> Iterator[InProcess]:
    """The app in this process on `data_dir` (two runs at once unless `settings` say)."""
    settings = {"mnist_dir": mnist, "max_concurrent": 2, **settings}
    with InProcess(data_dir, **settings) as app:
        yield app


@pytest.fixture
def app(tmp_path: Path, real_mnist: Path) -> Iterator[InProcess]:
    """The app in this process, on the test's own data dir."""
    with in_process(tmp_path / "data", real_mnist) as a:
        yield a
