"""PyTorch semantics of optimizers, losses and checkpoints, table-driven against torch.

Per-parameter optimizer steps (a parameter that joins late, or skips steps), gradients
into a target that requires grad, and cross_entropy's ignore_index and target kinds.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor, nn, optim
from gradscope.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
TOL = {"float32": {"rtol": 2e-4, "atol": 2e-5}, "float64": {"rtol": 1e-6, "atol": 1e-9}}

# name: (ours, torch's). Each runs over the same schedule of which parameters get a grad.
OPTIMIZERS: dict[str, tuple[Callable, Callable]] = {
    "adam": (lambda p: optim.Adam(p, lr=0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    "adam_l2": (
        lambda p: optim.Adam(p, lr=0.05, betas=(0.8, 0.95), weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.95), weight_decay=0.1),
    ),
    "adamw": (
        lambda p: optim.AdamW(p, lr=0.05, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
    ),
    "sgd_momentum": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    ),
    "sgd": (lambda p: optim.SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
}


class Pair:
    """Our parameters and optimizer beside torch's, stepped on the same gradients."""

    def __init__(self, name: str, shapes: list[tuple[int, ...]], dtype: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        np_dtype = DTYPES[dtype][0]
        inits = [rng.normal(size=s).astype(np_dtype) for s in shapes]
        self.coefs = [rng.normal(size=s).astype(np_dtype) for s in shapes]
        self.ours = [nn.Parameter(a.copy(), dtype=np_dtype) for a in inits]
        self.theirs = [torch.tensor(a, requires_grad=True) for a in inits]
        make, make_ref = OPTIMIZERS[name]
        self.make = make
        self.opt, self.ref = make(self.ours), make_ref(self.theirs)
        self.dtype = dtype

    def step(self, active: list[bool]) -> None:
        """One step where only the active parameters get a gradient (the rest: None)."""
        self.opt.zero_grad()
        self.ref.zero_grad(set_to_none=True)
        live = [i for i, a in enumerate(active) if a]
        if live:
            # d/dp of sum(c * p * p) is 2 c p: it depends on p, so drift shows up.
            loss = sum(((self.ours[i] * self.ours[i]) * Tensor(self.coefs[i])).sum() for i in live)
            ref = sum((self.theirs[i] ** 2 * torch.from_numpy(self.coefs[i])).sum() for i in live)
            loss.backward()  # type: ignore[union-attr]
            ref.backward()  # type: ignore[union-attr]
        self.opt.step()
        self.ref.step()

    def check(self) -> None:
        for p, q in zip(self.ours, self.theirs):
            assert p.data.dtype == q.detach().numpy().dtype
            np.testing.assert_allclose(p.data, q.detach().numpy(), **TOL[self.dtype])


shapes_st = st.lists(
    st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple), min_size=1, max_size=3
)


@st.composite
def schedules(draw: st.DrawFn, n_params: int) -> list[list[bool]]:
    """Which parameters get a grad on each step: some join late, some skip steps."""
    steps = draw(st.integers(1, 8))
    joins = [draw(st.integers(0, steps)) for _ in range(n_params)]
    return [
        [t >= joins[i] and draw(st.booleans() | st.just(True)) for i in range(n_params)]
        for t in range(steps)
    ]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@SETTINGS
@given(data=st.data(), shapes=shapes_st, dtype=st.sampled_from(sorted(DTYPES)))
def test_optimizer_steps_are_per_parameter_as_in_torch(
    name: str, data: st.DataObject, shapes: list[tuple[int, ...]], dtype: str
) -> None:
    pair = Pair(name, shapes, dtype, seed=len(shapes))
    schedule = data.draw(schedules(len(shapes)))
    for active in schedule:
        pair.step(active)
        pair.check()
    # Each parameter's count is the number of steps it had a gradient on.
    assert pair.opt.param_steps == [sum(a[i] for a in schedule) for i in range(len(shapes))]
    assert pair.opt.steps == len(schedule)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_a_layer_unfrozen_late_matches_torch_in_float64(name: str) -> None:
    """The issue's case: 7e-2 off before, when the late layer used the global step."""
    pair = Pair(name, [(3, 4), (4,)], "float64", seed=3)
    for t in range(30):
        pair.step([True, t >= 20])
    for p, q in zip(pair.ours, pair.theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-6, atol=1e-9)


def _edit_header(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a checkpoint with its JSON header changed by `edit`."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(str(np.load(io.BytesIO(members["header.npy"]))))
    edit(header)
    buf = io.BytesIO()
    np.save(buf, np.array(json.dumps(header)))
    members["header.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)


def _state_without_param_steps(path: Path) -> None:
    """Rewrite a checkpoint as the format before per-parameter steps wrote it."""
    _edit_header(path, lambda header: header["optimizer"].pop("param_steps"))


class Two(nn.Module):
    def __init__(self, dtype: Any) -> None:
        rng = np.random.default_rng(0)
        self.a = nn.Parameter(rng.normal(size=(3, 2)), dtype=dtype)
        self.b = nn.Parameter(rng.normal(size=(2,)), dtype=dtype)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd_momentum"])
@pytest.mark.parametrize("old_format", [False, True])
def test_checkpoint_keeps_per_parameter_steps(name: str, old_format: bool, tmp_path: Path) -> None:
    """Save mid-run, load into a fresh model and optimizer, carry on: still torch's numbers."""
    model = Two(np.float64)
    pair = Pair(name, [(3, 2), (2,)], "float64", seed=1)
    for o, p in zip(pair.ours, model.parameters()):
        p.data[...] = o.data
    pair.ours = model.parameters()
    pair.opt = pair.make(pair.ours)
    # b joins late, unless the old format is being read: it had one count for everyone,
    # so only a run where every parameter stepped every time resumes exactly from it.
    schedule = [[True, old_format or t >= 3] for t in range(6)] + [[True, True]] * 4
    for active in schedule[:6]:
        pair.step(active)
    path = save_checkpoint(tmp_path / "c.npz", model, pair.opt)
    if old_format:
        _state_without_param_steps(path)
    fresh = Two(np.float64)
    opt = pair.make(fresh.parameters())
    load_checkpoint(path, fresh, opt)
    assert opt.param_steps == pair.opt.param_steps
    pair.ours, pair.opt = fresh.parameters(), opt
    for active in schedule[6:]:
        pair.step(active)
        pair.check()


def test_old_state_dict_gives_the_global_step_to_parameters_with_state() -> None:
    a, b = nn.Parameter(np.ones(2), dtype=np.float64), nn.Parameter(np.ones(3), dtype=np.float64)
    opt = optim.Adam([a, b])
    a.grad = np.ones(2)
    opt.step()
    opt.step()
    sd = opt.state_dict()
    assert sd["param_steps"] == [2, 0]
    del sd["param_steps"]
    fresh = optim.Adam([a, b])
    fresh.load_state_dict(sd)
    assert fresh.param_steps == [2, 0]


@pytest.mark.parametrize("bad", [None, [1], [1, -1], [1, 2.0], [True, 1], "2", [1, 1 << 60]])
def test_checkpoint_refuses_bad_param_steps(bad: Any, tmp_path: Path) -> None:
    model = Two(np.float64)
    opt = optim.Adam(model.parameters())
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    path = save_checkpoint(tmp_path / "c.npz", model, opt)
    _edit_header(path, lambda header: header["optimizer"].__setitem__("param_steps", bad))
    target = Two(np.float64)
    target_opt = optim.Adam(target.parameters())
    with pytest.raises(CheckpointError, match="param_steps"):
        load_checkpoint(path, target, target_opt)
    assert target_opt.param_steps == [0, 0] and target_opt.steps == 0


# -- losses: the target's gradient --------------------------------------------------------

LOSSES: dict[str, tuple[Callable, Callable, Callable]] = {
    # name: (ours, torch's, a target drawn from a rng)
    "mse": (F.mse_loss, TF.mse_loss, lambda rng, s: rng.normal(size=s)),
    "bce_with_logits": (
        F.binary_cross_entropy_with_logits,
        TF.binary_cross_entropy_with_logits,
        lambda rng, s: rng.uniform(size=s),
    ),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
@SETTINGS
@given(
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
    dtype=st.sampled_from(sorted(DTYPES)),
    reduction=st.sampled_from(["mean", "sum"]),
    grads=st.sampled_from([(True, True), (False, True), (True, False)]),
    calls=st.integers(1, 3),
    upstream=st.floats(-2, 2),
    seed=st.integers(0, 2**16),
)
def test_loss_gradient_reaches_a_target_that_requires_grad(
    loss: str,
    shape: tuple[int, ...],
    dtype: str,
    reduction: str,
    grads: tuple[bool, bool],
    calls: int,
    upstream: float,
    seed: int,
) -> None:
    ours_fn, ref_fn, draw_target = LOSSES[loss]
    np_dtype, _ = DTYPES[dtype]
    rng = np.random.default_rng(seed)
    x_np, y_np = rng.normal(size=shape).astype(np_dtype), draw_target(rng, shape).astype(np_dtype)
    x, y = Tensor(x_np, requires_grad=grads[0], dtype=np_dtype), Tensor(y_np, dtype=np_dtype)
    y.requires_grad = grads[1]
    tx = torch.tensor(x_np, requires_grad=grads[0])
    ty = torch.tensor(y_np, requires_grad=grads[1])
    for _ in range(calls):  # repeated calls accumulate, each through its own graph
        out = ours_fn(x, y, reduction=reduction) * upstream
        ref = ref_fn(tx, ty, reduction=reduction) * upstream
        np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL[dtype])
        out.backward()
        ref.backward()
    for ours, theirs in ((x, tx), (y, ty)):
        if theirs.requires_grad:
            assert ours.grad is not None and ours.grad.dtype == np_dtype
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), **TOL[dtype])
        else:
            assert ours.grad is None


def test_a_plain_target_stays_out_of_the_graph() -> None:
    x = Tensor(np.ones(3), requires_grad=True)
    out = F.mse_loss(x, Tensor(np.zeros(3)))
    assert out._prev == (x,)


# -- cross_entropy: ignore_index and the kinds of target ----------------------------------


def _int_tensor(labels: np.ndarray) -> Tensor:
    """An engine Tensor holding integer class indices."""
    t = engine.tensor(labels)
    if t.data.dtype.kind not in "iu":  # before integer tensors: set the data directly
        t.data = labels.copy()
    return t


TARGET_KINDS: dict[str, Callable[[np.ndarray], Any]] = {
    "ndarray": lambda y: y,
    "list": lambda y: y.tolist(),
    "tensor": _int_tensor,
}
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64]


@pytest.mark.filterwarnings("ignore:grad and param do not obey")  # torch, on an empty batch
@SETTINGS
@given(
    n=st.integers(0, 6),
    c=st.integers(1, 5),
    dtype=st.sampled_from(sorted(DTYPES)),
    reduction=st.sampled_from(["mean", "sum"]),
    ignore=st.sampled_from(["default", "a class", "beyond", "none"]),
    kind=st.sampled_from(sorted(TARGET_KINDS)),
    int_dtype=st.sampled_from(INT_DTYPES),
    calls=st.integers(1, 2),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_cross_entropy_ignore_index_and_targets_as_torch(
    n: int,
    c: int,
    dtype: str,
    reduction: str,
    ignore: str,
    kind: str,
    int_dtype: Any,
    calls: int,
    seed: int,
    data: st.DataObject,
) -> None:
    np_dtype, _ = DTYPES[dtype]
    rng = np.random.default_rng(seed)
    ignore_index = {"default": -100, "a class": int(rng.integers(0, c)), "beyond": c + 2}.get(
        ignore, -100
    )
    labels = rng.integers(0, c, n)
    if ignore != "none":
        dropped = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
        labels[dropped] = ignore_index
    if np.dtype(int_dtype).kind == "u" and (labels < 0).any():
        int_dtype = np.int64  # -100 fits no unsigned type
    target = TARGET_KINDS[kind](labels.astype(int_dtype))
    x_np = rng.normal(size=(n, c)).astype(np_dtype)
    x = Tensor(x_np, requires_grad=True, dtype=np_dtype)
    tx = torch.tensor(x_np, requires_grad=True)
    kw = {} if ignore == "default" else {"ignore_index": ignore_index}
    for _ in range(calls):
        out = F.cross_entropy(x, target, reduction=reduction, **kw)
        ref = TF.cross_entropy(tx, torch.tensor(labels), reduction=reduction, **kw)
        assert out.data.dtype == np_dtype
        np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL[dtype])
        out.backward()
        ref.backward()
    assert x.grad is not None and x.grad.dtype == np_dtype
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL[dtype])


def test_cross_entropy_all_ignored_is_nan_for_a_mean_with_zero_gradient() -> None:
    x = Tensor(np.ones((3, 4)), requires_grad=True, dtype=np.float64)
    out = F.cross_entropy(x, [-100, -100, -100])
    assert np.isnan(out.data)
    out.backward()
    assert np.array_equal(x.grad, np.zeros((3, 4)))
    assert F.cross_entropy(x, [-100] * 3, reduction="sum").data == 0


@pytest.mark.parametrize(
    "target, match",
    [
        ([0, 9], "out of range"),  # 9 is neither a class nor ignored
        ([0, -1], "out of range"),
        (np.array([0.0, 1.0]), "integer class indices"),  # floats stay refused, as before
        (np.array([True, False]), "integer class indices"),
        ([0], "integer class indices"),
    ],
)
def test_cross_entropy_refuses_bad_targets(target: Any, match: str) -> None:
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=match):
        F.cross_entropy(x, target)


def test_a_float64_input_through_a_float32_linear_keeps_float32_grads() -> None:
    # PyTorch refuses mixed dtypes in linear; ours promotes the forward, and the grads still
    # keep each parameter's own dtype.
    layer = nn.Linear(3, 2)
    x = engine.tensor(np.arange(6, dtype=np.float64).reshape(2, 3), requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad.dtype == np.float32 and layer.bias.grad.dtype == np.float32
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(layer.bias.grad, [2.0, 2.0])
    np.testing.assert_allclose(layer.weight.grad, [[3, 5, 7], [3, 5, 7]])
