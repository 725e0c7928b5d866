"""bench/_harness.interleave: persistent children given timed turns in rotating order, and
bench/tensor_mlp.py built on it (figures are not judged here: no timed assertions)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bench.test_paired_benches import run_bench

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _harness as H  # noqa: E402


def child_script(tmp_path: Path, name: str, body: str) -> list[str]:
    """A child that imports the harness and runs `body` (which calls H.serve)."""
    path = tmp_path / f"{name}.py"
    path.write_text(
        f"import sys\nsys.path.insert(0, {str(BENCH)!r})\nimport time\nimport _harness as H\n"
        + textwrap.dedent(body)
    )
    return [str(path)]


def test_turns_rotate_and_time_what_they_say(tmp_path: Path) -> None:
    jobs = {
        n: child_script(
            tmp_path,
            n,
            f"""
            calls = 0
            def step():
                global calls
                calls += 1
                time.sleep(0.001)
            H.serve(step, 3, {{"name": {n!r}}}, batch=10)
            """,
        )
        for n in ("a", "b")
    }
    info, res = H.interleave(jobs, rounds=3, seconds=0.05, settle=0.02, threads=1, verbose=False)
    assert info == {"a": {"name": "a"}, "b": {"name": "b"}}
    for n in ("a", "b"):
        assert len(res[n]) == 3
        for r in res[n]:
            assert r["steps"] >= 1
            # the timed window runs whole steps until it has lasted `seconds`
            assert r["step_s"] * r["steps"] >= 0.05
            assert r["samples_per_s"] == pytest.approx(10 / r["step_s"])


def test_a_child_that_crashes_is_reported_with_its_stderr(tmp_path: Path) -> None:
    jobs = {
        "fine": child_script(tmp_path, "fine", "H.serve(lambda: None, 0, {})"),
        "bad": child_script(
            tmp_path,
            "bad",
            """
            def step():
                raise RuntimeError("boom in the timed step")
            H.serve(step, 0, {})
            """,
        ),
    }
    with pytest.raises(H.ChildError, match="boom in the timed step"):
        H.interleave(jobs, rounds=2, seconds=0.01, settle=0.0, threads=1, verbose=False)


def test_tensor_mlp_quick_compares_all_three_from_the_same_weights() -> None:
    out = run_bench("bench/tensor_mlp.py", "--quick", "--no-tuned-numpy")
    assert "children kept alive" in out
    losses = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^(ours|torch|numpy)\s+[\d,]+\s+[\d.]+\s+\S+\s+([\d.]+)$", out, re.M)
    }
    assert set(losses) == {"ours", "torch", "numpy"}, out
    assert len(set(losses.values())) == 1  # step 1 from the shared weights agrees
    for ref in ("torch", "numpy"):
        line = re.search(rf"^ours / {ref}\s+= ([\d.]+)x .*\n  per round: (.*)$", out, re.M)
        assert line is not None, out
        assert float(line.group(1)) > 0 and len(line.group(2).split()) == 2
