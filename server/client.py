"""A logging client for any Python script: its metrics, live on a Gradscope server.

    from gradscope.server.client import Run

    with Run(name="my net", config={"lr": 0.01}, url="http://127.0.0.1:8000") as run:
        for step in range(1, 1001):
            run.log({"train_loss": loss}, step=step)
        run.log({"test_loss": test_loss, "test_acc": acc}, step=step, epoch=1)

Standard library only. Metrics are buffered and sent in batches (POST
/api/ingest/runs/{id}/events), each with its own id and retried on a network error or a
busy server: the server stores a batch once however often it arrives. A step's metrics
always travel in one batch, so a batch is either new or all stored already. A thread sends
a heartbeat while the script is quiet; a script that dies stops them, and its run is marked
crashed. The token comes from `token=` or $GRADSCOPE_TOKEN; the server from `url=` or
$GRADSCOPE_URL (default http://127.0.0.1:8000).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import threading
import time
import uuid
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
STEP_METRICS = ("train_loss",)
EPOCH_METRICS = ("test_loss", "test_acc", "train_acc")
# The server's request body limit (GRADSCOPE_MAX_BODY_BYTES) is 64 KB by default: a batch
# stays under it; a smaller limit is met by halving (a 413 stores nothing).
MAX_BATCH_BYTES = 60_000
RETRIES = 6
RETRY_STATUS = {429, 502, 503, 504}


class ClientError(RuntimeError):
    """The server refused a request (its status and what it said)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


class Http:
    """JSON over one keep-alive connection, retried with backoff when the network fails."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a server URL: {url!r} (e.g. {DEFAULT_URL})")
        self.url, self.parts, self.timeout = url.rstrip("/"), parts, timeout
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            kind = http.client.HTTPSConnection if self.parts.scheme == "https" else None
            kind = kind or http.client.HTTPConnection
            self.conn = kind(self.parts.hostname, self.parts.port, timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The answer's JSON; ClientError for a refusal, OSError once retries run out."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for attempt in range(RETRIES + 1):
            try:
                conn = self._connect()
                conn.request(method, self.parts.path.rstrip("/") + path, data, self.headers)
                response = conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException):
                self.close()  # a new connection for the retry
                if attempt == RETRIES:
                    raise
                time.sleep(min(5.0, 0.2 * 2**attempt))
                continue
            if response.status in RETRY_STATUS and attempt < RETRIES:
                wait = response.getheader("retry-after")
                time.sleep(float(wait) if wait and wait.isdigit() else min(5.0, 0.2 * 2**attempt))
                continue
            answer = json.loads(text) if text else None
            if response.status >= 400:
                detail = answer.get("detail") if isinstance(answer, dict) else answer
                raise ClientError(response.status, detail)
            return answer
        raise AssertionError("unreachable")


def _value(name: str, value: Any) -> Any:
    """A metric's value as the server takes it (non-finite floats as strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # a numpy or torch scalar
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, not {value!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


class Run:
    """One run on the server, fed by this script; `finish()` (or leaving `with`) ends it."""

    def __init__(
        self,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        total_steps: int = 0,
        run_id: str | None = None,
        batch_events: int = 1000,
        flush_every: float = 0.5,
    ) -> None:
        self.base = url or os.environ.get("GRADSCOPE_URL") or DEFAULT_URL
        token = token or os.environ.get("GRADSCOPE_TOKEN") or None
        self.http, self.beats = Http(self.base, token), Http(self.base, token)
        if run_id is None:  # a new run; with run_id: one made for us (a sweep's trial)
            body = {"name": name, "config": config or {}, "tags": list(tags), "pid": os.getpid()}
            run = self.http.request(
                "POST", "/api/ingest/runs", {**body, "total_steps": total_steps}
            )
        else:
            path = f"/api/ingest/runs/{run_id}/heartbeat"
            run = self.http.request("POST", path, {"pid": os.getpid()})
        self.id, self.heartbeat_every = run["id"], float(run["heartbeat"])
        self.batch_events, self.flush_every = batch_events, flush_every
        self.pending: list[dict[str, Any]] = []  # events not sent, in step order
        self.step, self.epoch = 0, 0
        self.sent_at = self.last_flush = time.monotonic()
        self.finished = False
        self._lock = threading.Lock()  # one batch or heartbeat decision at a time
        self._stop = threading.Event()
        self._beating = threading.Thread(target=self._beat, name="gradscope-heartbeat", daemon=True)
        self._beating.start()

    @property
    def page(self) -> str:
        """The run's page on the dashboard."""
        return f"{self.base.rstrip('/')}/runs/{self.id}"

    def log(
        self, metrics: dict[str, Any], step: int | None = None, epoch: int | None = None
    ) -> None:
        """Record metrics at a step (default: the last one + 1): train_loss per step;
        test_loss, test_acc, train_acc per epoch (`epoch`: the epochs done, default the last)."""
        if self.finished:
            raise RuntimeError(f"run {self.id} is finished: it takes no more metrics")
        step = self.step + 1 if step is None else int(step)
        if step < self.step:
            raise ValueError(f"step {step} is before the last step logged ({self.step})")
        self.step = step
        self.epoch = self.epoch if epoch is None else int(epoch)
        unknown = set(metrics) - {*STEP_METRICS, *EPOCH_METRICS, "epoch"}
        if unknown:
            known = ", ".join((*STEP_METRICS, *EPOCH_METRICS))
            raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}: log {known}")
        base = {"epoch": int(metrics.get("epoch", self.epoch))}
        if "train_loss" in metrics:
            data = {**base, "train_loss": _value("train_loss", metrics["train_loss"])}
            self.pending.append({"step": step, "data": data, "t": time.time()})
        figures = {k: _value(k, metrics[k]) for k in EPOCH_METRICS if k in metrics}
        if figures:
            if "test_loss" not in figures:
                raise ValueError("an epoch's figures include test_loss")
            self.pending.append({"step": step, "data": {**base, **figures}, "t": time.time()})
        now = time.monotonic()
        if len(self.pending) > self.batch_events or now - self.last_flush >= self.flush_every:
            self.flush(final=False)

    def flush(self, final: bool = True) -> None:
        """Send what is buffered; final=False holds back the last step (more may come for it)."""
        with self._lock:
            self.last_flush = time.monotonic()
            keep = len(self.pending)
            if not final:
                while keep and self.pending[keep - 1]["step"] == self.step:
                    keep -= 1
            events, self.pending = self.pending[:keep], self.pending[keep:]
            try:
                self._send(events)
            except BaseException:
                self.pending = events + self.pending  # nothing was lost: sent again next time
                raise

    def _send(self, events: list[dict[str, Any]]) -> None:
        """Batches of whole steps, each under the size limits, each id'd and retried."""
        start, limit = 0, self.batch_events
        while start < len(events):
            end = min(len(events), start + limit)
            while (
                end < len(events)
                and end > start + 1
                and events[end]["step"] == events[end - 1]["step"]
            ):
                end -= 1  # never split a step
            chunk = events[start:end]
            body = {"batch_id": uuid.uuid4().hex, "events": chunk}
            if len(json.dumps(body)) > MAX_BATCH_BYTES and len(chunk) > 1:
                limit = max(1, len(chunk) // 2)
                continue
            try:
                self.http.request("POST", f"/api/ingest/runs/{self.id}/events", body)
            except ClientError as e:
                if e.status != 413 or len(chunk) == 1:
                    raise
                limit = max(1, len(chunk) // 2)  # the server takes less than we thought
                continue
            self.sent_at = time.monotonic()
            start = end

    def finish(self, state: str = "finished", message: str | None = None) -> None:
        """Send the rest and end the run (finished, failed or stopped)."""
        if self.finished:
            return
        try:
            if state == "finished":
                self.flush()
            else:
                # A failing script's last metrics still count, if they can be sent.
                with contextlib.suppress(OSError, ClientError):
                    self.flush()
            body = {"state": state, "message": message}
            self.http.request("POST", f"/api/ingest/runs/{self.id}/finish", body)
        finally:
            self.finished = True
            self._stop.set()
            self.http.close()

    def _beat(self) -> None:
        """Say the script is alive whenever it has been quiet for a heartbeat's time."""
        while not self._stop.wait(self.heartbeat_every / 2):
            if time.monotonic() - self.sent_at < self.heartbeat_every:
                continue
            try:
                self.beats.request("POST", f"/api/ingest/runs/{self.id}/heartbeat", {})
                self.sent_at = time.monotonic()
            except (OSError, ClientError):
                continue  # the next beat tries again; the server decides what silence means
        self.beats.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is None:
            self.finish()
        elif isinstance(error, KeyboardInterrupt):
            self.finish("stopped", "interrupted from the keyboard (Ctrl-C)")
        else:
            self.finish("failed", f"{type(error).__name__}: {error}"[:2000])
