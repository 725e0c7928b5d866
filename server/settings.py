"""Every server setting in one place, read from GRADSCOPE_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


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
    # A run watched by more clients than this gets batches at most every crowd_interval
    # seconds: each batch costs the server a send per client, and the CPU it takes comes
    # out of training on a small machine.
    crowd_clients: int = 20
    crowd_interval: float = 0.1
    # How long a REST call waits for a worker to acknowledge pause/step/stop (seconds).
    command_timeout: float = 30.0

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
        for name in ("max_concurrent", "max_queue", "max_parameters", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"GRADSCOPE_{name.upper()} must be at least 1")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be from 1 to 65535, got {self.port}")


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = str(kind)
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
