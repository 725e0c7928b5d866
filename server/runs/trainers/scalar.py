"""Training on the scalar engine, exactly as the articles do it: a `Value` graph per step,
zeroed grads, backward, `p.data += -lr * p.grad` (engine.examples.Example.step).

The loss is written the way the articles write it, so a preset reproduces their numbers
bit for bit: napkin's `sum((model(x) - y) ** 2 ...) * (1.0 / n)`, micrograd's summed
`(yout - ygt) ** 2`, and the micrograd demo's `(1 + -y * score).relu()` for hinge.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.engine.autograd import topological_order
from gradscope.engine.backprop import ARTICLES
from gradscope.engine.checkpoint import CheckpointError
from gradscope.engine.graph import MODEL_GROUP, to_dict, to_dot
from gradscope.engine.health import grad_norm
from gradscope.engine.inference import Layer
from gradscope.engine.jsonsafe import json_float
from gradscope.engine.nn import _atomic_write
from gradscope.engine.scalar import MLP, Neuron, Value
from gradscope.server.runs.config import RunConfig
from gradscope.server.runs.data import RunData
from gradscope.server.runs.events import GraphData, GraphValuesData, HealthData, ParamStructure
from gradscope.server.runs.trainers.base import Trainer, TrainingDiverged

FORMAT = "gradscope-scalar-checkpoint"


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a step builds its graph.

    A step makes tens of thousands of Values, and every few hundred allocations the
    collector would scan them all; the graph has no cycles (reference counting frees
    it), so the scans find nothing and halve the speed of the napkin step.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Article:
    """One of the second article's hand-worked expressions as a model: its leaves are the
    parameters, and calling it builds the expression over them (the root is its output)."""

    def __init__(self, kind: str) -> None:
        self.build = ARTICLES[kind]
        self.leaves, _ = self.build()

    def __call__(self) -> Value:
        return self.build(self.leaves)[1]

    def parameters(self) -> list[Value]:
        return list(self.leaves)


class ScalarTrainer(Trainer):
    """A Neuron (hidden = []), an MLP of Values with one output, or an article's expression."""

    def __init__(self, config: RunConfig, data: RunData) -> None:
        super().__init__(config, data)
        m, nin = config.model, config.dataset.input_size()
        self._groups: dict[str, list[Value]] = {}
        # Each parameter's place (by its label) and its layer in the graph, from the model.
        self._structure: dict[str, ParamStructure] = {}
        self._param_groups: dict[Value, str] = {}
        if m.kind != "mlp":
            article = Article(m.kind)
            self._groups["leaves"] = article.parameters()
            self._param_groups = dict.fromkeys(article.leaves, MODEL_GROUP)
            self.model: Neuron | MLP | Article = article
        elif not m.hidden:
            neuron = Neuron(nin, activation=m.output, bias=m.bias, seed=config.seed)
            for i, w in enumerate(neuron.w):
                w.label = f"w{i}"
                if m.start_weights is not None:
                    w.data = float(m.start_weights[i])
            self._groups["weight"] = list(neuron.w)
            if neuron.b is not None:
                neuron.b.label = "b"
                self._groups["bias"] = [neuron.b]
            self._place(neuron, 0, 0, MODEL_GROUP)
            self.model = neuron
        else:
            mlp = MLP(
                nin, [*m.hidden, 1], m.activation, output_activation=m.output, seed=config.seed
            )
            for li, layer in enumerate(mlp.layers):
                if not m.bias:
                    for n in layer.neurons:
                        n.b = None
                self._groups[f"L{li}.weight"] = [w for n in layer.neurons for w in n.w]
                if m.bias:
                    self._groups[f"L{li}.bias"] = [n.b for n in layer.neurons if n.b is not None]
                for ni, n in enumerate(layer.neurons):
                    self._place(n, li, ni, f"L{li}")
            self.model = mlp
        self.params = self.model.parameters()
        self.lr = config.optimizer.lr
        self._xs: list[list[float]] = data.x_train.tolist()
        self._ts: list[float] = data.t_train.reshape(len(data.x_train), -1)[:, 0].tolist()
        self._last_loss: Value | None = None
        self._scope: str | None = None

    def _place(self, neuron: Neuron, layer: int, unit: int, group: str) -> None:
        """Record where a neuron's parameters sit: structure by label, graph group by node."""
        for i, w in enumerate(neuron.w):
            self._structure[w.label] = ParamStructure(
                layer=layer, unit=unit, input=i, kind="weight"
            )
            self._param_groups[w] = group
        if neuron.b is not None:
            b = ParamStructure(layer=layer, unit=unit, input=None, kind="bias")
            self._structure[neuron.b.label] = b
            self._param_groups[neuron.b] = group

    def structure(self) -> dict[str, ParamStructure]:
        return self._structure

    def _penalty_weights(self) -> list[Value]:
        return [w for k, vs in self._groups.items() if k.endswith("weight") for w in vs]

    def _points_changed(self) -> None:
        d = self.data
        self._xs = d.x_train.tolist()
        self._ts = d.t_train.reshape(d.n_train, -1)[:, 0].tolist()
        self._last_loss, self._scope = None, None

    # -- the step -------------------------------------------------------------------------

    def _loss_on(self, rows: Sequence[int]) -> tuple[list[Value], Value]:
        """The batch's outputs and loss, built as the articles build them."""
        xs, ts, model = self._xs, self._ts, self.model
        if isinstance(model, Article):
            root = model()  # descends on its own output, which keeps its label ("L", "o")
            return [root], root
        outs = [model(xs[i]) for i in rows]
        if self.config.loss == "hinge":
            total = sum((1 + -ts[i] * o).relu() for i, o in zip(rows, outs))
        else:
            total = sum((o - ts[i]) ** 2 for i, o in zip(rows, outs))
        loss = total * (1.0 / len(rows)) if self.config.reduction == "mean" else total
        penalty = self._penalty()
        if penalty is not None:  # regularization: part of the loss the step descends
            loss = loss + penalty
        loss.label = "loss"
        return outs, loss

    def _train_batch(self, idx: np.ndarray | None) -> tuple[float, np.ndarray]:
        with _no_gc():
            return self._train_rows(range(len(self._xs)) if idx is None else idx.tolist())

    def _train_rows(self, rows: Sequence[int]) -> tuple[float, np.ndarray]:
        at = f"training diverged at step {self.step + 1}"
        try:
            outs, loss = self._loss_on(rows)
        except (ArithmeticError, ValueError) as e:
            # The engine's ops raise rather than make NaN/Inf, naming themselves in e.op.
            raise TrainingDiverged(f"{at}: {e}", getattr(e, "op", None)) from None
        if not math.isfinite(loss.data):
            raise TrainingDiverged(f"{at}: the loss is {loss.data}", _first_bad(loss, "data"))
        for p in self.params:
            p.grad = 0.0
        loss.backward()
        if not all(math.isfinite(p.grad) for p in self.params):
            raise TrainingDiverged(f"{at}: a gradient is NaN or Inf", _first_bad(loss, "grad"))
        lr = self.lr
        for p in self.params:
            p.data += -lr * p.grad
        self._last_loss = loss
        return loss.data, np.array([[o.data] for o in outs])

    # -- numpy views ----------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        """An article's expression has no test set: its "test loss" is its output now."""
        if isinstance(self.model, Article):
            return {"test_loss": self.model().data}
        return super().evaluate()

    def _layers(self) -> list[Layer]:
        assert not isinstance(self.model, Article), "an article's expression has no layers"
        neurons_by_layer = (
            [[self.model]]
            if isinstance(self.model, Neuron)
            else [lay.neurons for lay in self.model.layers]
        )
        layers: list[Layer] = []
        for neurons in neurons_by_layer:
            w = np.array([[v.data for v in n.w] for n in neurons])
            b = np.array([n.b.data for n in neurons]) if neurons[0].b is not None else None
            layers.append((w, b, neurons[0].activation))
        return layers

    def _params(self) -> dict[str, np.ndarray]:
        return {p.label: np.array(p.data) for p in self.params}

    def _write_param(self, name: str, index: tuple[int, ...], value: float) -> None:
        next(p for p in self.params if p.label == name).data = float(value)

    def _snapshot(self) -> dict[str, np.ndarray]:
        return {k: np.array([v.data for v in vs]) for k, vs in self._groups.items()}

    def _health(self) -> HealthData:
        """Per parameter group: gradient norm, and the last update / weight norm."""
        grad = {
            k: json_float(grad_norm(np.array([v.grad for v in vs])))
            for k, vs in self._groups.items()
        }
        ratio = self._update_ratios(self._snapshot())
        return HealthData(grad_norm=grad, update_ratio=ratio, dead_relu={})

    # -- the graph ------------------------------------------------------------------------

    def _probe(self) -> Value:
        """The next step's loss with its gradients, without updating anything."""
        with _no_gc():
            _, loss = self._loss_on(range(len(self._xs)))
            for p in self.params:
                p.grad = 0.0
            loss.backward()
        return loss

    def _graph_scope(self) -> str:
        """'step' when a full-batch step's graph fits max_graph_nodes, else 'sample 0'."""
        if self._scope is None:
            self._scope = "sample 0"
            if self._full_batch:
                root = self._last_loss if self._last_loss is not None else self._probe()
                if len(topological_order(root)) <= self.config.record.max_graph_nodes:
                    self._scope, self._last_loss = "step", root
        return self._scope

    def _with_graph(self, use: Any) -> Any:
        """Call use(root) on the graph in scope; a sample-0 graph leaves the grads alone."""
        if self._graph_scope() == "step":
            if self._last_loss is None:
                self._last_loss = self._probe()
            return use(self._last_loss)
        saved = [p.grad for p in self.params]
        for p in self.params:
            p.grad = 0.0
        try:
            _, loss = self._loss_on([0])
            loss.backward()
            return use(loss)
        finally:
            for p, g in zip(self.params, saved):
                p.grad = g

    def _graph(self) -> GraphData:
        def graph(root: Value) -> GraphData:
            scope = self._graph_scope()
            return GraphData(**to_dict(root, self._param_groups), dot=to_dot(root), scope=scope)

        return self._with_graph(graph)

    def _graph_values(self) -> GraphValuesData:
        def values(root: Value) -> GraphValuesData:
            nodes = topological_order(root)
            return GraphValuesData(
                data=[json_float(v.data) for v in nodes], grad=[json_float(v.grad) for v in nodes]
            )

        return self._with_graph(values)

    # -- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self, path: Path) -> None:
        """Parameter values + the clock in an .npz (no pickles), written atomically."""
        header = {"format": FORMAT, "version": 1, "names": [p.label for p in self.params]}
        header["meta"] = self._meta()
        arrays = {
            "params": np.array([p.data for p in self.params], dtype=np.float64),
            "header": np.array(json.dumps(header)),
        }
        _atomic_write(Path(path), lambda f: np.savez(f, **arrays))

    def load_checkpoint(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as f:
                values, header = f["params"], json.loads(str(f["header"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
        names = [p.label for p in self.params]
        header = header if isinstance(header, dict) else {}
        meta = header.get("meta")
        if (
            header.get("format") != FORMAT
            or header.get("names") != names
            or values.shape != (len(names),)
            or not isinstance(meta, dict)
            or not isinstance(meta.get("step"), int)
        ):
            raise CheckpointError(f"{path} is not a checkpoint of this scalar model")
        for p, v in zip(self.params, values.tolist()):
            p.data = v
        self._restore_position(meta["step"], meta)
        self._last_loss = None


def _first_bad(root: Value, attr: str) -> str | None:
    """The op that made the first NaN/Inf: for data, the first such node (inputs first);
    for grads, the first node (outputs first) whose backward gave an operand one."""
    nodes = topological_order(root)
    if attr == "data":
        return next((v.op for v in nodes if v.op and not math.isfinite(v.data)), None)
    for v in reversed(nodes):
        if any(not math.isfinite(c.grad) for c in v.children):
            return v.op
    return None
