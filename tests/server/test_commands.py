"""`gradscope train | runs | export | presets`, and a live server watching a CLI run."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from gradscope.server.cli import main
from tests.server.conftest import ROOT, Server, step_metrics, watch


def test_train_runs_export(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    code = main(
        [
            "train",
            "--preset",
            "xor",
            "--set",
            "steps=300",
            "--set",
            "name=cli xor",
            "--data-dir",
            str(data),
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "300/300" in err and "steps/s" in err and "finished" in err
    assert main(["runs", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "cli xor" in out and "300/300" in out
    run_id = out.splitlines()[1].split()[0]
    assert main(["export", run_id, "--format", "csv", "--data-dir", str(data)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == list(range(1, 301))
    target = tmp_path / "run.json"
    assert (
        main(["export", run_id, "--format", "json", "-o", str(target), "--data-dir", str(data)])
        == 0
    )
    exported = json.loads(target.read_text())
    assert exported["run"]["source"] == "cli" and exported["run"]["state"] == "finished"
    assert main(["export", "0123456789ab", "--data-dir", str(data)]) == 1
    assert "no run" in capsys.readouterr().err


def test_train_rejects_bad_config(tmp_path: Path, capsys) -> None:
    code = main(
        ["train", "--preset", "xor", "--set", "optimizer.lr=-1", "--data-dir", str(tmp_path)]
    )
    assert code == 2
    assert "optimizer.lr" in capsys.readouterr().err
    assert main(["train", "--preset", "nope", "--data-dir", str(tmp_path)]) == 2


def test_presets_command(capsys) -> None:
    assert main(["presets", "--json"]) == 0
    configs = json.loads(capsys.readouterr().out)
    assert configs["napkin-average"]["engine"] == "scalar"


def test_server_shows_a_cli_run_live(server: Server) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gradscope.server.cli",
            "train",
            "--preset",
            "moons",
            "--set",
            "steps=4000",
            "--data-dir",
            str(server.data_dir),
        ],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = ""
        while not run_id:
            runs = server.request("GET", "/api/runs").json()["runs"]
            run_id = runs[0]["id"] if runs else ""
            time.sleep(0.05)
        hello, events = watch(server.ws_url, run_id)
        assert hello["run"]["source"] == "cli"
        assert step_metrics(events) == list(range(1, 4001))
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert server.run(run_id)["state"] == "finished"
