"""`gradscope serve | train | runs | export | export-model | sweep`: runs and the store, in a
terminal (`sweep` lives in sweep.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.progress import Progress as RichProgress

from gradscope.server.cli import sweep
from gradscope.server.settings import Settings


def add_parsers(sub: Any) -> None:
    """Add the run-related subcommands to the `gradscope` parser."""
    s = sub.add_parser("serve", help="serve the dashboard and the REST/websocket API")
    s.add_argument(
        "--host",
        default=None,
        help="address to bind (default 127.0.0.1; another address needs a token, which is "
        "printed, or $GRADSCOPE_TOKEN)",
    )
    s.add_argument("--port", type=int, default=None, help="port (default 8000)")
    _data_dir(s)
    t = sub.add_parser("train", help="train a run in the foreground, into the same store")
    t.add_argument("--preset", help="preset name (see `gradscope presets`)")
    t.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optimizer.lr=0.05 (repeatable)",
    )
    t.add_argument("--name", help="a name for the run list")
    _data_dir(t)
    r = sub.add_parser("runs", help="list the runs in the store")
    _data_dir(r)
    p = sub.add_parser("presets", help="list the presets and their configs")
    p.add_argument("--json", action="store_true", help="print the full configs as JSON")
    e = sub.add_parser("export", help="export a run's metrics (csv) or its whole history (json)")
    e.add_argument("run", help="run id (see `gradscope runs`)")
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    _data_dir(e)
    m = sub.add_parser(
        "export-model", help="write a finished MNIST run's final weights as .npz + .json"
    )
    m.add_argument("run", help="run id of a finished MNIST run (see `gradscope runs`)")
    m.add_argument("--out", type=Path, required=True, help="folder to write NAME.npz/.json in")
    m.add_argument("--name", default="mnist", help="file name without suffix (default mnist)")
    _data_dir(m)
    sweep.add_parser(sub)


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where runs are stored (default $GRADSCOPE_DATA_DIR or ~/.local/share/gradscope)",
    )


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    try:
        return Settings.from_env(data_dir=args.data_dir, **extra)
    except ValueError as e:
        # A bad GRADSCOPE_* variable is a message naming it, not a traceback.
        raise SystemExit(f"gradscope {args.command}: {e}") from None


def serve(args: argparse.Namespace) -> int:
    """Run the server until Ctrl-C."""
    import uvicorn

    from gradscope.server.cli.guard import DataDirLock, GuardError, check_database
    from gradscope.server.store import Store, StoreError
    from gradscope.server.web.app import create_app
    from gradscope.server.web.limits import guarded_h11
    from gradscope.server.web.security import (
        DropRefusedHandshakeErrors,
        start_urls,
        token_required,
        with_token,
    )

    settings = with_token(_settings(args, host=args.host, port=args.port))
    lock = DataDirLock(settings.data_dir)  # held until this process ends
    try:
        lock.acquire()
        check_database(settings.data_dir)
    except (GuardError, OSError) as e:
        lock.release()
        print(f"gradscope serve: {e}", file=sys.stderr)
        return 1
    try:
        # Open the store once up front: an unusable data folder is a message, not a traceback
        # from the server's startup.
        Store(settings.data_dir).close()
    except StoreError as e:
        print(f"gradscope serve: {e}", file=sys.stderr)
        return 1
    app = create_app(settings)
    urls = start_urls(settings)
    print(
        f"Gradscope: {urls[0]}  (API docs: /docs; data in {settings.data_dir})",
        *(f"           {url}" for url in urls[1:]),
        sep="\n",
        flush=True,
    )
    if token_required(settings):
        print(
            "  Others on the network can reach this server: it needs the token above "
            "(scripts: 'Authorization: Bearer <token>'; see docs/security.md).",
            flush=True,
        )
    logging.getLogger("uvicorn.error").addFilter(DropRefusedHandshakeErrors())
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # h11 caps unfinished headers at 16 KB (httptools buffers them without a limit),
        # each request's headers get GRADSCOPE_HEADER_TIMEOUT seconds, and past
        # GRADSCOPE_MAX_CONNECTIONS connections requests get a 503 at once.
        http=guarded_h11(settings.header_timeout),
        h11_max_incomplete_event_size=16 * 1024,
        limit_concurrency=settings.max_connections,
        ws_max_size=settings.ws_max_message_bytes,
        # Per-client deflate was most of the streaming cost (docs/benchmarks.md, issue 5).
        ws_per_message_deflate=False,
    )
    return 0


class Progress:
    """rich's progress bar on a terminal; elsewhere (a log, a pipe) the same line every 5 s."""

    def __init__(self, total: int, out: TextIO | None = None) -> None:
        # Off a terminal rich assumes 80 columns and would wrap the line; a log has room.
        console = Console(file=out or sys.stderr, highlight=False)
        if not console.is_terminal:
            console.width = 160
        # A dumb terminal cannot redraw a line: it gets the log's lines too.
        self.console, self.tty = console, console.is_terminal and not console.is_dumb_terminal
        self.bar = RichProgress(
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=not self.tty,
        )
        self.task = self.bar.add_task("train", total=total, status="")
        self.start = time.monotonic()
        self.last = 0.0

    def __enter__(self) -> Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, loop: Any, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        step = loop.trainer.step
        rate = step / max(now - self.start, 1e-9)
        acc = loop.last_metrics.get("test_acc")
        acc_text = f"  test acc {acc:.2%}" if isinstance(acc, float) else ""
        status = f"loss {loop.last_loss:.4g}{acc_text}  {rate:,.0f} steps/s"
        self.bar.update(self.task, completed=step, status=status)
        if not self.tty:
            self.console.print(self.bar.get_renderable())


def parse_overrides(pairs: list[str]) -> dict:
    """`--set` KEY=VALUE pairs (dotted keys) as a nested dict; a VALUE is JSON when it parses."""
    from gradscope.server.runs.config import ConfigError

    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError("overrides", f"{pair!r} is not KEY=VALUE (e.g. optimizer.lr=0.05)")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(".".join(parts[: i + 1]), "is set to a value and used as a group")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(key.strip(), "is a group of settings and set to a value")
        node[parts[-1]] = value
    return out


def train(args: argparse.Namespace) -> int:
    """Create a run in the store and train it here, showing progress."""
    from gradscope.server.runs.config import ConfigError, resolve_config
    from gradscope.server.runs.loop import TrainingLoop
    from gradscope.server.runs.trainers import build_trainer
    from gradscope.server.store import Store

    settings = _settings(args)
    try:
        config = resolve_config(
            args.preset,
            parse_overrides(args.sets),
            max_parameters=settings.max_parameters,
            max_steps=settings.max_steps,
            max_memory_mb=settings.max_run_memory_mb,
        )
    except ConfigError as e:
        print(f"gradscope train: {e}", file=sys.stderr)
        return 2
    if config.pace is not None:
        print(
            f"gradscope train: paced at {config.pace:g} steps/s, so every step can be watched "
            "(--set pace=null: full speed)",
            file=sys.stderr,
        )
    store = Store(settings.data_dir)
    try:
        run = store.create_run(
            config.model_dump(mode="json"),
            preset=args.preset,
            name=args.name or config.name,
            source="cli",
            total_steps=config.total_steps(),
        )
        store.update_run(run.id, pid=os.getpid())
        print(
            f"run {run.id}: {args.preset or 'custom config'}, {config.total_steps()} steps; "
            f"data in {settings.data_dir}",
            file=sys.stderr,
            flush=True,
        )
        try:
            trainer = build_trainer(config, settings.mnist_dir)
        except Exception as e:
            store.set_state(run.id, "failed", message=f"{type(e).__name__}: {e}")
            print(f"gradscope train: {e}", file=sys.stderr)
            return 1
        with Progress(config.total_steps()) as progress:
            loop = TrainingLoop(store, run.id, trainer, config, on_progress=progress)
            state = loop.run()
            progress(loop, final=True)
        record = store.get_run(run.id)
        message = f" ({record.error})" if record and record.error else ""
        print(f"run {run.id} {state} at step {trainer.step}{message}", file=sys.stderr)
        return 0 if state == "finished" else 1
    finally:
        store.close()


def runs(args: argparse.Namespace) -> int:
    """Print the runs in the store, newest first."""
    from gradscope.server.store import Store

    store = Store(_settings(args).data_dir)
    try:
        rows = store.list_runs()
    finally:
        store.close()
    if not rows:
        print("no runs yet: start one with `gradscope train --preset napkin-average`")
        return 0
    print(f"{'id':12}  {'state':11}  {'steps':>15}  {'preset':22}  name")
    for r in rows:
        steps = f"{r.step}/{r.total_steps}"
        print(f"{r.id:12}  {r.state:11}  {steps:>15}  {r.preset or '-':22}  {r.name}")
    return 0


def presets(args: argparse.Namespace) -> int:
    """Print the presets (with --json, their full configs)."""
    from gradscope.server.runs.config import PRESETS

    if args.json:
        print(
            json.dumps({n: p.config.model_dump(mode="json") for n, p in PRESETS.items()}, indent=2)
        )
        return 0
    for name, p in PRESETS.items():
        print(f"{name:22}  {p.title}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write a run's metrics as CSV or its whole history as JSON."""
    from gradscope.server.store import Store
    from gradscope.server.store.export import iter_csv, iter_json

    store = Store(_settings(args).data_dir)
    try:
        try:
            run = store.get_run(args.run)
        except ValueError:
            run = None
        if run is None:
            print(
                f"gradscope export: no run with id {args.run!r} (see `gradscope runs`)",
                file=sys.stderr,
            )
            return 1
        chunks = (iter_csv if args.format == "csv" else iter_json)(store, run.id)
        if args.output is not None:
            with open(args.output, "w") as out:
                out.writelines(chunks)
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            sys.stdout.writelines(chunks)
    finally:
        store.close()
    return 0


def export_model(args: argparse.Namespace) -> int:
    """Write a finished MNIST run's final checkpoint as a model /draw can load."""
    from gradscope.server.digits.models import ModelError, UnknownModel
    from gradscope.server.digits.models import export_model as write_model
    from gradscope.server.store import Store

    store = Store(_settings(args).data_dir)
    try:
        npz, js = write_model(store, args.run, args.out, args.name)
    except (ModelError, ValueError) as e:
        message = getattr(e, "message", str(e))
        if isinstance(e, UnknownModel):
            message = f"no run with id {args.run!r} (see `gradscope runs`)"
        print(f"gradscope export-model: {message}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"wrote {npz} and {js}", file=sys.stderr)
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": serve,
    "train": train,
    "runs": runs,
    "presets": presets,
    "export": export,
    "export-model": export_model,
    "sweep": sweep.main,
}
