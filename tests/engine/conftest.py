"""Engine fixtures that cost seconds, built once for the whole session."""

from __future__ import annotations

import pytest

from gradscope.engine.examples import NapkinAverage


@pytest.fixture(scope="session")
def napkin_trained() -> tuple[NapkinAverage, list[float]]:
    """The first article's neuron after its 300 full-batch steps on the scalar engine, and the
    loss of each step. Those steps take the scalar engine tens of seconds, so the tests that
    check them (the article's numbers, the tensor engine against them) share this one run;
    they only read it."""
    napkin = NapkinAverage()
    losses = napkin.train(300)
    return napkin, losses
