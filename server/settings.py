"""Every server setting in one place, read from GRADSCOPE_* environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# A token guards a server others can reach; a short one could be guessed.
MIN_TOKEN_CHARS = 16


def default_data_dir() -> Path:
    """$GRADSCOPE_DATA_DIR, else the per-user data folder ($XDG_DATA_HOME or ~/.local/share)."""
    env = os.environ.get("GRADSCOPE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "gradscope"


@dataclass(frozen=True)
class Settings:
    """Server settings; `from_env()` fills them from GRADSCOPE_<NAME> variables."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=default_data_dir)
    mnist_dir: Path | None = None
    # At most this many runs train at once; the rest wait in a queue (default: one per core).
    max_concurrent: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_queue: int = 100
    max_parameters: int = 5_000_000
    max_steps: int = 1_000_000
    max_step_request: int = 100_000
    # Each websocket client's own queue, in event batches; when full it replays from the store.
    ws_queue_batches: int = 64
    ws_max_message_bytes: int = 64 * 1024
    # How often the hub looks for new committed events (seconds).
    poll_interval: float = 0.02
    # A run watched by n > crowd_clients clients gets batches at most every
    # crowd_interval * n / crowd_clients seconds: each batch costs the server a send per
    # client, and the CPU it takes comes out of training on a small machine.
    crowd_clients: int = 20
    crowd_interval: float = 0.1
    # How long a REST call waits for a worker to acknowledge pause/step/stop (seconds).
    command_timeout: float = 30.0
    # JSON request bodies (everything but /api/predict, which takes up to a 1 MB image).
    max_body_bytes: int = 64 * 1024
    # Runs created through the API per minute (a sliding window); more get 429.
    max_runs_per_minute: int = 30
    # Network safety (docs/security.md). A token is required when `host` is not a loopback
    # address or when one is given; `gradscope serve` then generates one if none is set.
    token: str = ""
    # Host names the server answers to besides localhost, IP addresses and the bind host
    # (comma-separated in the environment); "*" turns the Host check off.
    allowed_hosts: tuple[str, ...] = ()
    # Other origins whose pages may call the API (CORS) and open its websockets.
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then GRADSCOPE_* variables, then explicit overrides (None means unset)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"GRADSCOPE_{f.name.upper()}")
            if raw is None or f.name == "data_dir":
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("data_dir") is not None:
            values["data_dir"] = Path(values["data_dir"]).expanduser()
        if values.get("mnist_dir") is not None:
            values["mnist_dir"] = Path(values["mnist_dir"]).expanduser()
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings that cannot work, naming the variable."""
        positive = (
            "max_concurrent",
            "max_queue",
            "max_parameters",
            "max_steps",
            "max_step_request",
            "max_body_bytes",
            "max_runs_per_minute",
            "ws_max_message_bytes",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"GRADSCOPE_{name.upper()} must be at least 1")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be from 1 to 65535, got {self.port}")
        # It travels in URLs, a cookie and a header: URL-safe characters only.
        if self.token and not re.fullmatch(rf"[\w.~-]{{{MIN_TOKEN_CHARS},}}", self.token, re.ASCII):
            raise ValueError(
                f"GRADSCOPE_TOKEN must be at least {MIN_TOKEN_CHARS} letters, digits or -_.~; "
                "make one with python -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        for origin in self.cors_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/?#\s]+", origin):
                raise ValueError(
                    f"GRADSCOPE_CORS_ORIGINS: {origin!r} is not an origin like https://host:port"
                )


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = str(kind)
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"GRADSCOPE_{name.upper()} must be a number, got {raw!r}") from None
    if "Path" in kind:
        return Path(raw)
    return raw
