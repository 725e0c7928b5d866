"""engine.optim.WarmupLinearLR: the per-step one-cycle schedule the mnist-cnn preset needs."""

from __future__ import annotations

import numpy as np
import pytest

from gradscope.engine import optim
from gradscope.engine.module import Parameter


def _adam(lr: float = 0.3) -> optim.Adam:
    return optim.Adam([Parameter(np.zeros(3))], lr=lr)


def test_rises_over_the_warmup_then_falls_to_zero_at_the_end() -> None:
    opt = _adam(0.3)
    sched = optim.WarmupLinearLR(opt, total_steps=20, warmup=0.1)
    assert sched.warm == 2 and opt.lr == pytest.approx(0.15)  # step 0 runs at base / warm
    rates = [opt.lr]
    for _ in range(20):
        sched.step()
        rates.append(opt.lr)
    # Warm-up: 0.15, 0.3; then from 0.3 down by 0.3/18 a step, reaching 0 at step 20.
    expected = [0.15, 0.3] + [0.3 * (1 - k / 18) for k in range(19)]
    assert rates == pytest.approx(expected)
    assert max(rates) == pytest.approx(0.3) and rates[-1] == 0.0
    assert sched.lr_at(10_000) == 0.0  # never negative past the end


def test_is_a_function_of_the_step_alone() -> None:
    """A resumed run sets the rate from its step: the same as having stepped there."""
    a, b = _adam(), _adam()
    stepped = optim.WarmupLinearLR(a, total_steps=100, warmup=0.25)
    for _ in range(37):
        stepped.step()
    resumed = optim.WarmupLinearLR(b, total_steps=100, warmup=0.25)
    resumed.load_state_dict(stepped.state_dict())
    assert b.lr == a.lr == pytest.approx(resumed.lr_at(37))
    assert resumed.lr_at(37) == pytest.approx(0.3 * (1 - 12 / 75))


def test_without_warmup_it_only_decays() -> None:
    opt = _adam(1.0)
    sched = optim.WarmupLinearLR(opt, total_steps=4, warmup=0.0)
    assert [sched.lr_at(k) for k in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize(("total", "warmup"), [(0, 0.1), (10, -0.1), (10, 1.5)])
def test_refuses_bad_arguments(total: int, warmup: float) -> None:
    with pytest.raises(ValueError, match=r"total_steps|warmup"):
        optim.WarmupLinearLR(_adam(), total_steps=total, warmup=warmup)
