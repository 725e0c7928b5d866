"""The `gradscope` console script, run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "gradscope"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), "the gradscope console script is not installed in this environment"
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_demo_micrograd_trains_and_writes_dot(tmp_path: Path) -> None:
    dot = tmp_path / "graph.dot"
    res = run("demo", "micrograd", "--steps", "40", "--every", "20", "--dot", str(dot))
    assert res.returncode == 0, res.stderr
    losses = [float(x) for x in re.findall(r"loss (\d+\.\d+)", res.stdout)]
    assert len(losses) == 3  # steps 1, 20 and 40
    assert losses[-1] < 0.01 < losses[0]
    text = dot.read_text()
    assert text.startswith("digraph G {") and "{ loss | data " in text


def test_demo_napkin_prints_weights() -> None:
    res = run("demo", "napkin", "--steps", "5", "--every", "5")
    assert res.returncode == 0, res.stderr
    assert "step 5/5" in res.stdout and "weights" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "micrograd", "--steps", "0"], "--steps must be at least 1"),
        (["demo", "nope"], "invalid choice"),
        (["demo", "napkin", "--lr", "fast"], "invalid float value"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    res = run(*args)
    assert res.returncode == 2
    assert message in res.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GRADSCOPE_MAX_QUEUE", "many", "GRADSCOPE_MAX_QUEUE must be a number, got 'many'"),
        ("GRADSCOPE_MAX_STEPS", "0", "GRADSCOPE_MAX_STEPS must be at least 1"),
        ("GRADSCOPE_TOKEN", "short", "GRADSCOPE_TOKEN must be at least 16"),
    ],
)
def test_a_bad_setting_stops_serve_with_its_name(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    res = run("serve", "--data-dir", str(tmp_path), env={variable: value})
    assert res.returncode == 1
    assert message in res.stderr and "Traceback" not in res.stderr
