"""engine.perf: the malloc setting our entry points apply."""

from __future__ import annotations

import subprocess
import sys


def test_tune_malloc_applies_on_glibc_and_numpy_still_works() -> None:
    code = (
        "import numpy as np\n"
        "from gradscope.engine.perf import tune_malloc\n"
        "ok = tune_malloc()\n"
        "a = np.ones((512, 512), np.float32)\n"
        "del a\n"
        "b = np.ones((512, 512), np.float32) * 2\n"
        "print(ok, float(b.sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    applied, total = out.stdout.split()
    assert float(total) == 2 * 512 * 512
    if sys.platform.startswith("linux"):
        assert applied == "True"
