"""`gradscope train | runs | export | presets`, and a live server watching a CLI run."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gradscope.server.cli import main
from gradscope.server.cli.commands import Progress
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
            "pace=null",
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


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_the_progress_bar_on_a_terminal_and_off_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)  # rich's overrides of what is a terminal
    loop = SimpleNamespace(
        trainer=SimpleNamespace(step=0), last_loss=0.5, last_metrics={"test_acc": 0.25}
    )
    cases = [(Terminal(), "xterm", True), (Terminal(), "dumb", False)]
    for out, term, tty in [*cases, (io.StringIO(), "xterm", False)]:
        monkeypatch.setenv("TERM", term)
        with Progress(40, out=out) as progress:
            assert progress.tty is tty
            for step in range(1, 41):
                loop.trainer.step = step
                progress(loop, final=step == 40)
        text = out.getvalue()
        assert "40/40" in text and "loss 0.5" in text and "test acc 25.00%" in text, text
        assert ("\x1b[" in text) is tty  # a live bar draws with escape codes; a log gets lines


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
            "--set",
            "pace=null",
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
        deadline = time.monotonic() + 60
        while not run_id:
            assert time.monotonic() < deadline, "the CLI run never appeared in the store"
            assert proc.poll() in (None, 0), proc.communicate()[1]
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


def test_a_killed_cli_run_becomes_crashed_and_the_server_resumes_it(server: Server) -> None:
    cmd = [sys.executable, "-m", "gradscope.server.cli", "train", "--preset", "moons"]
    cmd += ["--set", "steps=1000000", "--set", "pace=null", "--set", "record.checkpoint_every=200"]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(server.data_dir)],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        run: dict = {}
        while not (run and run["state"] == "running" and run["checkpoint"]):
            assert time.monotonic() < deadline, run
            runs = server.request("GET", "/api/runs").json()["runs"]
            run = runs[0] if runs else {}
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)
    crashed = server.wait_for(run["id"], lambda r: r["state"] == "crashed", timeout=10)
    assert "gradscope train" in crashed["error"]
    resumed = server.request("POST", f"/api/runs/{run['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    server.wait_for(run["id"], lambda r: r["state"] == "running" and r["step"] > crashed["step"])
    time.sleep(1.5)  # a reaper round or more: a server's own worker is not taken for dead
    again = server.run(run["id"])
    assert again["state"] == "running" and again["error"] is None, again
    assert server.request("DELETE", f"/api/runs/{run['id']}").status_code == 204
