"""The run page's panels: the one registry of each panel, the events it draws and its module.

The run template renders one section per entry, in this order, and puts the entry's events and
module on it; static/js/run.js imports each module and routes events by these lists alone
(docs/panels.md describes every panel).
"""

from __future__ import annotations

from dataclasses import dataclass

MODULES = "/static/js/panels/"


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: its name (the section's id), title, events and ES module."""

    name: str
    title: str
    events: tuple[str, ...]
    module: str  # a file in static/js/panels/, whose default export is the panel's class

    @property
    def url(self) -> str:
        """Where the browser imports the panel's module from."""
        return MODULES + self.module


PANELS: tuple[Panel, ...] = (
    Panel("loss", "Loss", ("metrics",), "loss.js"),
    Panel("weights", "Weights", ("weights", "histograms"), "weights.js"),
    Panel("network", "Network", ("weights", "neurons"), "network.js"),
    Panel("health", "Health", ("health",), "health.js"),
    Panel("boundary", "Decision boundary", ("dataset", "boundary"), "boundary.js"),
    Panel("confusion", "Confusion matrix", ("confusion",), "confusion.js"),
    Panel("mnist", "MNIST", ("first_layer", "misclassified"), "mnist.js"),
    Panel("cnn", "CNN: kernels and feature maps", ("first_layer", "feature_maps"), "cnn.js"),
    Panel("landscape", "Loss landscape", ("weights", "histograms"), "landscape.js"),
    Panel("sharpness", "Sharpness", ("weights", "histograms"), "sharpness.js"),
    Panel("graph", "Computation graph", ("graph", "graph_values"), "graph.js"),
)
