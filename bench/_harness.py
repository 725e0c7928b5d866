"""Shared plumbing for the benchmarks: one subprocess per implementation, alternated rounds.

Each implementation runs in its own child process (torch's OpenMP pool and OpenBLAS's
threads fight when they share a process), with the BLAS/OpenMP thread counts pinned in
its environment before numpy or torch loads. The parent runs the children in turn for a
number of rounds, rotating the order, and keeps the median of each implementation's
figures: on a shared machine only ratios measured in the same run mean anything.

A child prints one line `@@result {json}` on stdout; everything else it prints is ignored
(and shown, with its stderr, if it crashes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

    Weights = list[tuple[np.ndarray, np.ndarray]]

RESULT_PREFIX = "@@result "
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class ChildError(RuntimeError):
    """A benchmark child process crashed or printed no result."""


def child_env(threads: int) -> dict[str, str]:
    """This process's environment with every BLAS/OpenMP thread count set to `threads`."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    return env


def emit(result: dict[str, Any]) -> None:
    """Hand a child's figures to the parent (the last `@@result` line wins)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(argv: Sequence[str], threads: int, timeout: float = 900.0) -> dict[str, Any]:
    """Run `python argv...` with pinned threads; return the dict it emitted."""
    cmd = [sys.executable, *argv]
    try:
        proc = subprocess.run(
            cmd, env=child_env(threads), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise ChildError(f"{' '.join(cmd)} ran past {timeout:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-4000:]).strip()
        raise ChildError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def parse_or_run_child(
    ap: argparse.ArgumentParser,
    child: Callable[[str, dict[str, Any]], None],
    quick: dict[str, Any] | None = None,
) -> argparse.Namespace | None:
    """Parse the command line, with the hidden --child/--config a parent passes its children.

    In a child: run `child(name, config)` and return None (the script then exits 0). In the
    parent: return the arguments, with the settings in `quick` applied if --quick was given.
    """
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, json.loads(args.config))
        return None
    if quick and args.quick:
        for key, value in quick.items():
            setattr(args, key, value)
    return args


def child_jobs(script: str, names: Sequence[str], cfg: dict[str, Any]) -> dict[str, list[str]]:
    """The `alternate` jobs that run `script --child NAME --config CFG` for each name."""
    path = str(Path(script).resolve())
    return {n: [path, "--child", n, "--config", json.dumps(cfg)] for n in names}


def alternate(
    jobs: dict[str, list[str]], rounds: int, threads: int | dict[str, int], verbose: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Run every job once per round, rotating the order each round; results per job."""
    names = list(jobs)
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            n_threads = threads[name] if isinstance(threads, dict) else threads
            res = run_child(jobs[name], n_threads)
            out[name].append(res)
            if verbose:
                brief = res.get("brief", "")
                print(f"  round {r + 1}/{rounds}  {name:<22} {brief}", file=sys.stderr, flush=True)
    return out


class _Served:
    """A persistent child started with `serve` in its config: it times steps on request."""

    def __init__(self, argv: Sequence[str], threads: int) -> None:
        self.cmd = [sys.executable, *argv]
        # stderr to a file, never a pipe: a chatty child must not block on a full pipe.
        self.err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            self.cmd,
            env=child_env(threads),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )

    def result(self) -> dict[str, Any]:
        """The next `@@result` line the child prints; ChildError if it dies first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX) :])
        self.proc.wait()
        self.err.seek(0)
        tail = self.err.read()[-4000:].strip()
        raise ChildError(f"{' '.join(self.cmd)} exited {self.proc.returncode}:\n{tail}")

    def request(self, settle: float, seconds: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"run {settle} {seconds}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # result() reports the crash with the child's stderr
        return self.result()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.communicate("quit\n", timeout=30)
            except (subprocess.TimeoutExpired, BrokenPipeError, ValueError):
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def interleave(
    jobs: dict[str, list[str]],
    rounds: int,
    seconds: float,
    settle: float,
    threads: int,
    verbose: bool = True,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Keep one child per job alive and time each in turn for `rounds` rounds.

    Restarting children every round (`alternate`) puts seconds of start-up between the
    two sides of a comparison, and this host changes speed on that scale. Here each turn
    is `settle` untimed seconds (the previous child's BLAS/OpenMP threads spin down and
    this one's caches refill) then `seconds` timed; the order rotates every round. The
    jobs' configs must carry `"serve": true` so that their children call `serve`.
    Returns each child's start-up result (what it passed to `serve` as `info`) and its
    results per round.
    """
    names = list(jobs)
    children = {n: _Served(jobs[n], threads) for n in names}
    try:
        info = {n: c.result() for n, c in children.items()}  # each warmed up and ready
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                res = children[name].request(settle, seconds)
                out[name].append(res)
                if verbose:
                    brief = res.get("brief", "")
                    line = f"  round {r + 1}/{rounds}  {name:<22} {brief}"
                    print(line, file=sys.stderr, flush=True)
        return info, out
    finally:
        for c in children.values():
            c.close()


def serve(step: Callable[[], Any], warmup: int, info: dict[str, Any], batch: int = 1) -> None:
    """The child's side of `interleave`: warm up, emit `info`, then time turns on request.

    Each request line `run SETTLE SECONDS` runs `step` untimed for SETTLE seconds, then
    timed for SECONDS, and emits the seconds per step (and `batch` / that as samples/s).
    """
    for _ in range(warmup):
        step()
    emit(info)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "run":
            break
        settle, seconds = float(words[1]), float(words[2])
        end = time.perf_counter() + settle
        while time.perf_counter() < end:
            step()
        n = 0
        t0 = time.perf_counter()
        while True:
            step()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        per_step = elapsed / n
        emit(
            {
                "step_s": per_step,
                "steps": n,
                "samples_per_s": batch / per_step,
                "brief": f"{batch / per_step:9.0f} samples/s  ({n} steps)",
            }
        )


def median_of(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def time_windows(
    step: Callable[[], Any], warmup: int, seconds: float, windows: int = 5, chunk: int = 1
) -> list[float]:
    """Seconds per call of `step` in each of `windows` timed windows of ~seconds/windows.

    `chunk` calls run between clock reads (use more for microsecond steps).
    """
    for _ in range(warmup):
        step()
    per_window = seconds / windows
    times = []
    for _ in range(windows):
        n = 0
        t0 = time.perf_counter()
        while True:
            for _ in range(chunk):
                step()
            n += chunk
            elapsed = time.perf_counter() - t0
            if elapsed >= per_window:
                break
        times.append(elapsed / n)
    return times


def linear_init(sizes: Sequence[int], rng: np.random.Generator) -> Weights:
    """PyTorch's nn.Linear init drawn from `rng`: float32 (weight (out, in), bias) per layer.

    Drawn once and handed to every implementation, so that they all start the same.
    """
    import numpy as np

    out = []
    for a, b in itertools.pairwise(sizes):
        bound = 1 / np.sqrt(a)
        w = rng.uniform(-bound, bound, (b, a)).astype(np.float32)
        out.append((w, rng.uniform(-bound, bound, b).astype(np.float32)))
    return out


def mlp_state_dict(weights: Weights) -> dict[str, np.ndarray]:
    """`weights` as a state dict for engine.nn.MLP (linear layers at 0, 2, 4, ...)."""
    return {
        f"{2 * k}.{p}": a for k, wb in enumerate(weights) for p, a in zip(("weight", "bias"), wb)
    }


def torch_sequential(
    weights: Weights, activation: str, output_activation: str = "linear"
) -> torch.nn.Sequential:
    """A torch.nn.Sequential of Linear layers holding copies of `weights`.

    `activation` ("relu" or "tanh") follows every hidden layer; `output_activation`
    ("linear" for none) the last one, as in engine.nn.MLP.
    """
    import torch

    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    layers: list[torch.nn.Module] = []
    for k, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        act = activation if k < len(weights) - 1 else output_activation
        if act != "linear":
            layers.append(acts[act]())
    return torch.nn.Sequential(*layers)


def backward_step(opt: Any, loss: Any) -> Any:
    """One optimizer step on `loss` (ours or torch's): zero_grad, backward, step; `loss`."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule, *(fmt(r) for r in cells[1:])])


def versions() -> str:
    """Python, numpy and (if importable without cost to the caller) torch versions."""
    import numpy as np

    parts = [f"python {sys.version.split()[0]}", f"numpy {np.__version__}"]
    try:
        from importlib.metadata import version

        parts.append(f"torch {version('torch')}")
    except Exception:
        pass
    return ", ".join(parts)
