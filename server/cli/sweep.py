"""`gradscope sweep`: a grid or random search over config keys, on a running server's queue
(POST /api/sweeps) or on a Ray cluster (`--ray ADDRESS|local`, server/ray_tune.py) whose
trials stream their metrics to the server."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from gradscope.server.client import DEFAULT_URL, ClientError, Http

WAIT_POLL = 1.0  # seconds between looks at a sweep that is still running


def add_parser(sub: Any) -> None:
    """Add `gradscope sweep` to the parser."""
    w = sub.add_parser(
        "sweep",
        help="run a grid or random search over config keys (on a server, or on Ray)",
        description="Make a run for each setting of the swept keys times --seeds, on a running "
        "`gradscope serve` (its queue), or as Ray Tune trials that stream to it (--ray).",
    )
    w.add_argument("--preset", help="preset name (see `gradscope presets`)")
    w.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field for every run, e.g. --set steps=500 (repeatable)",
    )
    w.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a key over values (JSON each), e.g. --grid optimizer.lr=0.01,0.1; a JSON "
        "list for list values: --grid 'model.hidden=[[16],[32,32]]' (repeatable)",
    )
    w.add_argument(
        "--range",
        dest="ranges",
        action="append",
        default=[],
        metavar="KEY=MIN:MAX[:log]",
        help="draw a key from a range (random search, with --samples), e.g. "
        "--range optimizer.lr=0.001:0.3:log (repeatable)",
    )
    w.add_argument("--samples", type=int, help="random search: settings to draw")
    w.add_argument("--seeds", type=int, default=1, help="runs of each setting (default 1)")
    w.add_argument("--max-runs", type=int, help="refuse a sweep of more runs than this")
    w.add_argument(
        "--metric",
        default="test_loss",
        choices=("test_loss", "test_acc", "train_loss", "train_acc"),
        help="what names the best run (its final value; default test_loss)",
    )
    w.add_argument("--name", help="the sweep's name (its runs' names start with it)")
    w.add_argument(
        "--url",
        default=os.environ.get("GRADSCOPE_URL", DEFAULT_URL),
        help=f"the server (default $GRADSCOPE_URL or {DEFAULT_URL})",
    )
    w.add_argument("--token", help="the server's token, if it needs one (default $GRADSCOPE_TOKEN)")
    w.add_argument("--wait", action="store_true", help="wait for the runs, then name the best")
    w.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the trials on a Ray cluster (ray://host:10001, auto) or `local` (a Ray "
        "instance on this machine); needs the extra: pip install 'gradscope[ray]'",
    )
    w.add_argument("--ray-cpus", type=int, default=2, help="--ray local: CPUs (default 2)")


def _values(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /api/sweeps body the arguments describe (ValueError for a malformed one)."""
    from gradscope.server.cli.commands import parse_overrides

    space: dict[str, Any] = {}
    for item in args.grid:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--grid {item!r} is not KEY=V1,V2")
        value = _values(raw) if raw.strip().startswith("[") else None
        space[key.strip()] = (
            value if isinstance(value, list) else [_values(v) for v in raw.split(",") if v.strip()]
        )
    for item in args.ranges:
        key, sep, raw = item.partition("=")
        parts = raw.split(":")
        if not sep or len(parts) not in (2, 3) or parts[2:] not in ([], ["log"]):
            raise ValueError(f"--range {item!r} is not KEY=MIN:MAX or KEY=MIN:MAX:log")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--range {item!r}: MIN and MAX must be numbers") from None
        space[key.strip()] = {"min": low, "max": high, "log": parts[2:] == ["log"]}
    spec: dict[str, Any] = {
        "preset": args.preset,
        "config": parse_overrides(args.sets) or None,
        "space": space,
        "samples": args.samples,
        "seeds": args.seeds,
        "max_runs": args.max_runs,
        "metric": args.metric,
        "name": args.name,
        "executor": "ray" if args.ray else "server",
    }
    return {k: v for k, v in spec.items() if v is not None}


def _problem(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(f"{d.get('field', '')}: {d.get('msg', '')}" for d in detail)
    return str(detail)


def main(args: argparse.Namespace) -> int:
    """Start the sweep; with --wait (always with --ray) wait for it and name the best run."""
    from gradscope.server.runs.config import ConfigError

    try:
        spec = spec_from_args(args)
    except (ValueError, ConfigError) as e:
        print(f"gradscope sweep: {e}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("GRADSCOPE_TOKEN") or None
    http = Http(args.url, token)
    try:
        sweep = http.request("POST", "/api/sweeps", spec)
    except ClientError as e:
        print(f"gradscope sweep: the server refused it: {_problem(e.detail)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"gradscope sweep: no server at {args.url} ({e}); start one with `gradscope serve`",
            file=sys.stderr,
        )
        return 1
    page = f"{args.url.rstrip('/')}/sweeps/{sweep['id']}"
    print(f"sweep {sweep['id']}: {len(sweep['runs'])} runs; watch it at {page}", flush=True)
    if args.ray:
        from gradscope.server.ray_tune import run_sweep

        run_sweep(sweep, args.ray, args.url, token, cpus=args.ray_cpus)
    elif not args.wait:
        return 0
    while True:
        sweep = http.request("GET", f"/api/sweeps/{sweep['id']}")
        if sweep["state"] == "done":
            break
        time.sleep(WAIT_POLL)
    report(sweep)
    return 0 if sweep["counts"].get("finished", 0) == len(sweep["runs"]) else 1


def report(sweep: dict[str, Any]) -> None:
    """Each run's state and final metric, then the best run and setting."""
    metric = sweep["metric"]
    for run in sweep["runs"]:
        figure = run["summary"].get(metric, {}).get("final")
        shown = "-" if figure is None else f"{figure:.4g}"
        print(f"{run['id']}  {run['state']:9}  {metric} {shown:>10}  {run['name']}")
    if sweep["best_run"]:
        best = next(r for r in sweep["runs"] if r["id"] == sweep["best_run"])
        print(f"best run: {best['name']} ({best['id']}), {metric} {sweep['best_value']:.4g}")
    if sweep["best_setting"]:
        s = sweep["best_setting"]
        print(f"best setting: {s['values']}, mean {metric} {s['mean']:.4g} over {len(s['runs'])}")
