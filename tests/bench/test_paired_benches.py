"""The paired benchmarks run end to end on tiny settings and print a verdict they computed
(their figures are not judged here: no timed assertions on these noisy machines)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_recording_paired_measures_both_sides() -> None:
    out = run_bench(
        "bench/recording_paired.py",
        "--rounds",
        "2",
        "--presets",
        "napkin-average,moons",
        "--steps",
        "30",
    )
    for preset in ("napkin-average", "moons"):
        line = re.search(rf"^{preset}\s+30\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) .*(yes|NO)$", out, re.M)
        assert line is not None, out
        evaluated, recorded, ratio = map(float, line.groups()[:3])
        # Measured and computed (a median of same-round time ratios); its size is the bench's
        # finding, not judged here.
        assert evaluated > 0 and recorded > 0 and ratio > 0
        assert re.search(rf"^{preset}: evaluated/recorded per round( [\d.]+){{2}}$", out, re.M)


def test_viewers_paired_alternates_phases_and_checks_its_viewers() -> None:
    out = run_bench(
        "bench/viewers_paired.py",
        "--pairs",
        "2",
        "--phase",
        "1.0",
        "--settle",
        "0.3",
        "--viewers",
        "3",
    )
    alone = re.search(r"^steps/s without viewers, per phase: (.*)$", out, re.M)
    watched = re.search(r"^steps/s with viewers, per phase: (.*)$", out, re.M)
    assert alone is not None and watched is not None, out
    assert len(alone.group(1).split()) == 3 and len(watched.group(1).split()) == 2
    assert "6 viewer connections got messages" in out
    ratios = re.search(r"^with / without, per viewer phase: (.*)$", out, re.M)
    assert ratios is not None and all(float(x) > 0 for x in ratios.group(1).split())
    assert re.search(r"^median ratio [\d.]+ .*goal >= 0.95: (met|MISSED)$", out, re.M)
