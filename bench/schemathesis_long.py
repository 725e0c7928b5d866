"""A long schemathesis run against a real `gradscope serve`: every phase, many examples.

    .venv/bin/python bench/schemathesis_long.py [--max-examples 500] [--max-time 600]

The server gets the same set-up as tests/server/test_schemathesis.py: its own data dir,
one worker slot held by a paused run (so the runs the fuzzer creates wait in the queue
instead of training), three real runs whose ids {run_id} parameters take 70% of the time.
schemathesis's own CLI then runs its examples, coverage (boundary values, wrong types,
unsupported methods), fuzzing and stateful phases with the schema checks below, and prints
its report. Afterwards the server must still answer, its log must hold no traceback, and
the SQLite file must pass PRAGMA integrity_check.

Exit status: 0 when nothing was found; 1 on a schemathesis finding, a crash of the server
or a traceback in its log; 2 when the set-up itself failed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._server import Server, mnist_dir

# The checks that judge an answer by the published schema (positive_data_acceptance is left
# out: a schema-valid body can still be refused by design, e.g. a blank drawing, with a 422).
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,negative_data_rejection,"
    "missing_required_header,unsupported_method,allow_header_conformance,use_after_free,"
    "ensure_resource_availability"
)
SERVER_ENV = {
    "GRADSCOPE_MAX_CONCURRENT": "1",
    "GRADSCOPE_MAX_STEPS": "5000",
    "GRADSCOPE_MAX_PARAMETERS": "50000",
    "GRADSCOPE_COMMAND_TIMEOUT": "10",
}


def _wait(http: httpx.Client, url: str, states: set[str], timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = http.get(url).json()
        if run["state"] in states:
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run did not reach {states}: {run}")
        time.sleep(0.1)


def seed_runs(server: Server) -> list[str]:
    """A finished scalar run, a finished tiny MNIST run, a paused tensor run (its slot held)."""
    scalar = server.create("micrograd-classifier")["id"]
    mnist = server.create(
        "mnist-mlp",
        {
            "dataset": {"mnist_train_limit": 600},
            "model": {"hidden": [16]},
            "epochs": None,
            "steps": 20,
            "batch_size": 64,
        },
    )["id"]
    for rid in (scalar, mnist):
        server.wait_final(rid, timeout=180)
    paused = server.create("moons", {"steps": 5000})["id"]
    _wait(server.http, f"{server.url}/api/runs/{paused}", {"running"})
    r = server.http.post(f"{server.url}/api/runs/{paused}/pause")
    if r.status_code != 200:
        raise RuntimeError(f"pause answered {r.status_code}: {r.text}")
    return [scalar, mnist, paused]


def config_toml(run_ids: list[str]) -> str:
    """schemathesis.toml: real run ids for {run_id} 70% of the time."""
    values = json.dumps(run_ids)
    return (
        f"[dictionaries.runs]\nvalues = {values}\n\n"
        '[parameters]\n"path.run_id" = { dictionary = "runs", probability = 0.7 }\n'
    )


def integrity(data_dir: Path) -> str:
    con = sqlite3.connect(data_dir / "gradscope.db")
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=500, help="per operation and phase")
    parser.add_argument("--max-time", type=int, default=None, help="seconds for the whole run")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis's seed")
    parser.add_argument("--mnist-dir", default=None, help="default $GRADSCOPE_MNIST_DIR")
    args = parser.parse_args()

    try:
        server = Server(mnist_dir(args.mnist_dir), env=SERVER_ENV).__enter__()
    except RuntimeError as e:
        print(f"set-up failed: {e}", file=sys.stderr)
        return 2
    try:
        try:
            run_ids = seed_runs(server)
        except RuntimeError as e:
            print(f"set-up failed: {e}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="gradscope-st-") as tmp:
            config = Path(tmp) / "schemathesis.toml"
            config.write_text(config_toml(run_ids))
            cmd = [
                sys.executable, "-m", "schemathesis.cli",
                "--config-file", str(config),
                "run", f"{server.url}/openapi.json",
                "--checks", CHECKS,
                "--max-examples", str(args.max_examples),
                "--phases", args.phases,
                "--workers", "1",
                "--request-timeout", "60",
            ]  # fmt: skip
            if args.max_time:
                cmd += ["--max-time", str(args.max_time)]
            if args.seed is not None:
                cmd += ["--seed", str(args.seed)]
            print("$", " ".join(cmd), flush=True)
            t0 = time.monotonic()
            found = subprocess.run(cmd, cwd=tmp).returncode
            took = time.monotonic() - t0

        alive = server.proc is not None and server.proc.poll() is None
        serving = alive and server.http.get(f"{server.url}/api/runs").status_code == 200
        runs = server.http.get(f"{server.url}/api/runs").json()["runs"] if serving else []
        log = server.log.read_text(errors="replace")
        tracebacks = log.count("Traceback (most recent call last)")
        check = integrity(server.data_dir)
    finally:
        server.__exit__()

    print("\n== gradscope after the fuzzing ==")
    print(f"schemathesis exit status: {found} ({took:.0f} s)")
    print(f"server still serving: {serving}; runs in the store: {len(runs)}")
    print(f"tracebacks in the server log: {tracebacks}")
    print(f"PRAGMA integrity_check: {check}")
    if tracebacks:
        print(log[-6000:])
    ok = found == 0 and serving and tracebacks == 0 and check == "ok"
    print("RESULT:", "no findings" if ok else "FINDINGS (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
