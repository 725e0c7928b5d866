"""The tensor engine's models built from a config (an MLP, or a CNN for `model.kind: cnn`),
each parameter's place in them, and what the CNN panel shows: the first conv layer's
kernels (a first_layer event) and one fixed test digit's feature maps (feature_maps).
"""

from __future__ import annotations

import itertools

import numpy as np

from gradscope.engine import Tensor, nn, optim
from gradscope.engine.inference import module_outputs, stages
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.events import (
    FeatureLayer,
    FeatureMapsData,
    FirstLayerData,
    ParamStructure,
)
from gradscope.server.runs.recording import IMAGE_UNITS, b64_bytes, unit_images
from gradscope.server.runs.sizes import IMAGE_SIDE

IMAGE_SHAPE = (1, IMAGE_SIDE, IMAGE_SIDE)  # what a CNN reads: one channel of 28x28
FEATURE_DIGIT = 0  # the test row whose feature maps every frame shows (MNIST's is a 7)


def build_model(config: RunConfig) -> nn.Sequential:
    """The run's network, fresh weights from the engine's generator (seed it first)."""
    m = config.model
    if m.kind != "cnn":
        sizes = config.layer_sizes()
        return nn.MLP(sizes, activation=m.activation, output_activation=m.output, bias=m.bias)
    act = nn.ACTIVATIONS[m.activation]
    layers: list[nn.Module] = []
    c_in = IMAGE_SHAPE[0]
    for conv in m.conv:
        layers.append(
            nn.Conv2d(c_in, conv.channels, conv.kernel, padding=conv.padding, bias=m.bias)
        )
        if conv.batch_norm:
            layers.append(nn.BatchNorm2d(conv.channels))
        if act is not nn.Identity:
            layers.append(act())
        if conv.pool > 1:
            layers.append(nn.MaxPool2d(conv.pool))
        c_in = conv.channels
    layers.append(nn.Flatten())
    sizes = config.layer_sizes()
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b, bias=m.bias))
        name = m.activation if i < len(sizes) - 2 else m.output
        if nn.ACTIVATIONS[name] is not nn.Identity:
            layers.append(nn.ACTIVATIONS[name]())
    return nn.Sequential(*layers)


def schedule(config: RunConfig, optimizer: optim.Optimizer) -> optim.LRScheduler | None:
    """The per-step learning-rate schedule of optimizer.schedule (None: constant)."""
    o = config.optimizer
    if o.schedule == "constant":
        return None
    return optim.WarmupLinearLR(optimizer, config.total_steps(), o.warmup)


def structure(model: nn.Module) -> tuple[dict[str, ParamStructure], dict[Tensor, str]]:
    """Each parameter's place (by name) and its layer in the graph (by node), from the
    model's modules: a layer is a Linear or a Conv2d, with the BatchNorm after it."""
    places: dict[str, ParamStructure] = {}
    groups: dict[Tensor, str] = {}
    layer, group = -1, ""
    for name, module in model.children():
        if isinstance(module, nn.Linear | nn.Conv2d):
            layer, group = layer + 1, name
        elif not (isinstance(module, nn.BatchNorm2d) and group):
            continue
        for pname, p in module.named_parameters(f"{name}."):
            kind = "bias" if p is getattr(module, "bias", None) else "weight"
            places[pname] = ParamStructure(layer=layer, unit=None, input=None, kind=kind)
            groups[p] = group
    return places, groups


def kernel_images(model: nn.Sequential) -> FirstLayerData:
    """The first conv layer's kernels (their first input channel) as small images."""
    conv = next(m for m in model.layers if isinstance(m, nn.Conv2d))
    w = conv.weight.data[:, 0]
    return FirstLayerData(shape=list(w.shape[1:]), **unit_images(w.reshape(len(w), -1)))


def feature_maps(
    model: nn.Sequential, x: np.ndarray, index: int, label: int, ink: np.ndarray
) -> FeatureMapsData:
    """One digit's maps after every conv and pool layer (x: the 784 inputs the model reads,
    `index` its test row, `ink` its pixels in 0..1), each channel an image scaled from its
    own min to max."""
    outs = module_outputs(model, x.reshape(1, *IMAGE_SHAPE))
    layers = []
    for name, i in stages(model):
        a = np.asarray(outs[i][0], dtype=np.float64)
        if a.ndim != 3:
            continue
        maps = np.nan_to_num(a[:IMAGE_UNITS].reshape(min(len(a), IMAGE_UNITS), -1))
        low, high = maps.min(axis=1), maps.max(axis=1)
        span = np.where(high > low, high - low, 1.0)[:, None]
        img = np.round(255 * (maps - low[:, None]) / span)
        layers.append(
            FeatureLayer(
                name=name,
                shape=list(a.shape),
                low=np.round(low, 4).tolist(),
                high=np.round(high, 4).tolist(),
                images=[b64_bytes(row) for row in img],
            )
        )
    image = b64_bytes(np.round(255 * np.clip(ink, 0, 1)))
    return FeatureMapsData(index=index, label=label, image=image, layers=layers)
