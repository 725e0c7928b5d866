"""Every server setting in one place: a pydantic-settings class read from GRADSCOPE_* variables."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gradscope.engine.mnist import MIRRORS

# A token guards a server others can reach; a short one could be guessed.
MIN_TOKEN_CHARS = 16
ENV_PREFIX = "GRADSCOPE_"

# A limit below one could never let anything through: refused at start, naming the variable.
Limit = Annotated[int, Field(ge=1)]
# Comma-separated in the environment ("a.example, b.example"), not JSON.
Names = Annotated[tuple[str, ...], NoDecode]


def default_data_dir() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/gradscope, else ~/.local/share/gradscope."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "gradscope"


class Settings(BaseSettings):
    """Server settings: defaults, then GRADSCOPE_<NAME> variables, then keyword arguments."""

    # Empty variables count as unset, as they did when these were read by hand.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    data_dir: Path = Field(default_factory=default_data_dir)
    mnist_dir: Path | None = None
    # Fetch missing MNIST files for a run (from mnist_mirrors); off: refuse the run.
    mnist_download: bool = True
    # Where missing MNIST files come from, tried in order (comma-separated base URLs); each
    # file is checked against its SHA256 sum whichever mirror serves it.
    mnist_mirrors: Names = MIRRORS
    # At most this many runs train at once; the rest wait in a queue (default: one per core).
    max_concurrent: Limit = Field(default_factory=lambda: os.cpu_count() or 1)
    max_queue: Limit = 100
    max_parameters: Limit = 5_000_000
    max_steps: Limit = 1_000_000
    max_step_request: Limit = 100_000
    # A run's estimated memory (parameters, activations at its batch size, data, test pass).
    max_run_memory_mb: Limit = 2048
    # /api/predict: an image's decoded pixels (width x height x bytes per pixel), and how many
    # predictions run at once (more wait, up to 16 times as many; beyond that a 429).
    max_decode_mb: Limit = 32
    max_predictions: Limit = 4
    # /api/predict?activations=1: at most this many activation values in all, per answer.
    max_activation_values: Limit = 65_536
    # Runs on one comparison (GET /api/compare, /compare).
    max_compared: Limit = 50
    # Runs one sweep may make (POST /api/sweeps: its settings times its seeds).
    max_sweep_runs: Limit = 50
    # Events in one ingest batch (POST /api/ingest/runs/{id}/events), and the seconds an
    # external run may stay silent (no batch, no heartbeat) before it is marked crashed.
    max_ingest_events: Limit = 10_000
    ingest_timeout: float = Field(60.0, gt=0, le=86_400)
    # Uploaded CSV data sets (POST /api/datasets): a file's bytes and data rows, and how many
    # sets the data dir keeps.
    max_dataset_bytes: Limit = 1024 * 1024
    max_dataset_rows: Limit = 10_000
    max_datasets: Limit = 100
    # Each request's headers must arrive within this many seconds; past this many open
    # connections requests get a 503 at once.
    header_timeout: float = Field(10.0, gt=0, le=3600)
    max_connections: Limit = 1000
    # Each websocket client's own queue, in event batches; when full it replays from the store.
    ws_queue_batches: int = 64
    ws_max_message_bytes: Limit = 64 * 1024
    # How often the hub looks for new committed events (seconds).
    poll_interval: float = 0.02
    # A run watched by n > crowd_clients clients gets batches at most every
    # crowd_interval * n / crowd_clients seconds: each batch costs the server a send per
    # client, and the CPU it takes comes out of training on a small machine.
    crowd_clients: int = 20
    crowd_interval: float = 0.1
    # How long a REST call waits for a worker to acknowledge pause/step/stop (seconds).
    command_timeout: float = 30.0
    # GET /api/runs/{id}/landscape and /sharpness, computed on demand off the training path:
    # the grid side at most, the training rows evaluated (an evenly spaced subsample of a
    # larger set), and the multiply-adds one request may take (grid points x rows x weights).
    landscape_max_grid: Limit = 201
    landscape_samples: Limit = 1000
    landscape_max_work: Limit = 4_000_000_000
    # JSON request bodies (everything but /api/predict, which takes up to a 1 MB image).
    max_body_bytes: Limit = 64 * 1024
    # Runs created through the API per minute (a sliding window); more get 429.
    max_runs_per_minute: Limit = 30
    # Network safety (docs/security.md). A token is required when `host` is not a loopback
    # address or when one is given; `gradscope serve` then generates one if none is set.
    token: str = ""
    # Host names the server answers to besides localhost, IP addresses and the bind host
    # (comma-separated in the environment); "*" turns the Host check off.
    allowed_hosts: Names = ()
    # Other origins whose pages may call the API (CORS) and open its websockets.
    cors_origins: Names = ()

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then GRADSCOPE_* variables, then explicit overrides (None means unset)."""
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as e:
            raise ValueError("; ".join(_message(error) for error in e.errors())) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (the environment is not read again)."""
        return self.model_copy(update=changes)

    @field_validator("data_dir", "mnist_dir")
    @classmethod
    def _expand_user(cls, path: Path | None) -> Path | None:
        return path.expanduser() if path is not None else None

    @field_validator("allowed_hosts", "cors_origins", "mnist_mirrors", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("token")
    @classmethod
    def _strong_token(cls, token: str) -> str:
        # It travels in URLs, a cookie and a header: URL-safe characters only.
        if token and not re.fullmatch(rf"[\w.~-]{{{MIN_TOKEN_CHARS},}}", token, re.ASCII):
            raise ValueError(
                f"GRADSCOPE_TOKEN must be at least {MIN_TOKEN_CHARS} letters, digits or -_.~; "
                "make one with python -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        return token

    @field_validator("mnist_mirrors")
    @classmethod
    def _mirrors(cls, mirrors: tuple[str, ...]) -> tuple[str, ...]:
        for mirror in mirrors:
            if not re.fullmatch(r"https?://[^?#\s]+", mirror):
                raise ValueError(
                    f"GRADSCOPE_MNIST_MIRRORS: {mirror!r} is not a base URL like https://host/path/"
                )
        if not mirrors:
            raise ValueError("GRADSCOPE_MNIST_MIRRORS: give at least one base URL")
        return mirrors

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/?#\s]+", origin):
                raise ValueError(
                    f"GRADSCOPE_CORS_ORIGINS: {origin!r} is not an origin like https://host:port"
                )
        return origins


def _message(error: Any) -> str:
    """One pydantic error as a sentence that names the variable to change."""
    field = str(error["loc"][0]) if error["loc"] else ""
    name = f"{ENV_PREFIX}{field.upper()}"
    kind, ctx = error["type"], error.get("ctx", {})
    if field == "port" and kind in ("greater_than", "less_than"):
        return f"port must be from 1 to 65535, got {error['input']}"
    if kind == "greater_than_equal":
        return f"{name} must be at least {ctx['ge']}"
    if kind.startswith(("int_", "float_")):
        return f"{name} must be a number, got {error['input']!r}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))  # our own message names the variable
    return f"{name}: {error['msg']}"
