"""What a run's config implies in memory, computed from its sizes alone (nothing built).

RunConfig.memory() and resolve_config's GRADSCOPE_MAX_RUN_MEMORY_MB check use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradscope.engine.inference import MODULE_CHUNK

if TYPE_CHECKING:
    from gradscope.server.runs.config import RunConfig

MNIST_TRAIN, MNIST_TEST = 60_000, 10_000
IMAGE_SIDE = 28  # MNIST digits: one channel of 28x28


def conv_shapes(conv: list[Any], side: int = IMAGE_SIDE) -> list[tuple[str, int, int, int]]:
    """(what, channels, height, width) after each conv and each pool of a CNN's conv
    stack (entries with channels, kernel, padding, pool), from a 1 x side x side image.

    A size that does not fit is a ValueError naming the entry (`index.field`) and shapes.
    """
    shapes, c, h = [], 1, side
    for i, layer in enumerate(conv):
        out = h + 2 * layer.padding - layer.kernel + 1
        if out < 1:
            raise ValueError(
                f"{i}.kernel",
                f"a {layer.kernel}x{layer.kernel} kernel (padding {layer.padding}) does not "
                f"fit the {c}x{h}x{h} input of conv layer {i}",
            )
        c, h = layer.channels, out
        shapes.append(("conv", c, h, h))
        if layer.pool > 1:
            if h < layer.pool:
                raise ValueError(
                    f"{i}.pool", f"pooling {layer.pool}x{layer.pool} does not fit {c}x{h}x{h}"
                )
            h //= layer.pool
            shapes.append(("pool", c, h, h))
    return shapes


def conv_parameters(conv: list[Any], bias: bool) -> int:
    """Weights, biases and BatchNorm scales and shifts of a CNN's conv stack."""
    total, c_in = 0, 1
    for layer in conv:
        c = layer.channels
        total += (
            c * c_in * layer.kernel**2 + (c if bias else 0) + (2 * c if layer.batch_norm else 0)
        )
        c_in = c
    return total


def run_memory(config: RunConfig) -> tuple[int, int]:
    """(bytes a run needs, of which activations), estimated from its sizes alone.

    Parameters six times over (grads, two optimizer buffers, scratch, a snapshot);
    four arrays per unit per sample of a batch (outputs, grads, pre-activations,
    masks); the data set; the test pass in float64 (outputs and their activations).
    """
    item = 4 if config.dataset.name == "mnist" else 8
    width, n = sum(config.layer_sizes()), config.dataset.train_size()
    test_n = MNIST_TEST if config.dataset.name == "mnist" else config.dataset.test_n
    test = 8 * 2 * test_n * width
    if config.model.kind == "cnn":
        # Each conv output is kept about three times (conv, norm, activation); the test
        # pass runs in chunks of MODULE_CHUNK digits (engine.inference.module_outputs).
        maps = sum(3 * c * h * w for _, c, h, w in conv_shapes(config.model.conv))
        width += maps
        test += item * 2 * min(test_n, MODULE_CHUNK) * maps
    batch = min(config.batch_size or n, n)
    activations = item * 4 * batch * width
    data = item * (n + test_n) * (config.dataset.input_size() + config.output_size())
    other = item * 6 * config.num_parameters() + data + test
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
