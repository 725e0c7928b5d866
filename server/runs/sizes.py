"""What a run's config implies in memory, computed from its sizes alone (nothing built).

RunConfig.memory() and resolve_config's GRADSCOPE_MAX_RUN_MEMORY_MB check use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradscope.server.runs.config import RunConfig

MNIST_TRAIN, MNIST_TEST = 60_000, 10_000


def run_memory(config: RunConfig) -> tuple[int, int]:
    """(bytes a run needs, of which activations), estimated from its sizes alone.

    Parameters six times over (grads, two optimizer buffers, scratch, a snapshot);
    four arrays per unit per sample of a batch (outputs, grads, pre-activations,
    masks); the data set; the test pass in float64 (outputs and their activations).
    """
    item = 4 if config.dataset.name == "mnist" else 8
    width, n = sum(config.layer_sizes()), config.dataset.train_size()
    test_n = MNIST_TEST if config.dataset.name == "mnist" else config.dataset.test_n
    batch = min(config.batch_size or n, n)
    activations = item * 4 * batch * width
    data = item * (n + test_n) * (config.dataset.input_size() + config.output_size())
    other = item * 6 * config.num_parameters() + data + 8 * 2 * test_n * width
    return activations + other, activations


def memory_problem(config: RunConfig, max_mb: int) -> tuple[str, str] | None:
    """(field, message) when the run's estimated memory is over the limit, naming what to
    shrink; None when it fits."""
    need, activations = run_memory(config)
    if need <= max_mb * 2**20:
        return None
    field = "batch_size" if 2 * activations > need else "model.hidden"
    hint = "a smaller batch_size" if field == "batch_size" else "fewer or narrower layers"
    batch = min(config.batch_size or 10**12, config.dataset.train_size())
    return field, (
        f"this run needs about {need / 2**20:,.0f} MB of memory (activations of {batch:,} "
        f"samples at a time take {activations / 2**20:,.0f} MB), more than this server's "
        f"limit of {max_mb:,} MB (GRADSCOPE_MAX_RUN_MEMORY_MB): use {hint}"
    )
