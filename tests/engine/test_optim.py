"""engine.optim and engine.checkpoint: PyTorch's update rules, schedules, exact resumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor, nn, optim
from gradscope.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

OPTIMIZERS: dict[str, tuple[Callable, Callable]] = {
    "sgd": (lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum_wd": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    ),
    "sgd_dampening": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3),
    ),
    "sgd_nesterov": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "adam": (lambda p: optim.Adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
    "adam_wd": (
        lambda p: optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1),
    ),
    "adamw": (
        lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ),
}


def problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(16, 4)), rng.integers(0, 3, 16)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_follows_pytorch_for_20_steps(name: str) -> None:
    make, make_ref = OPTIMIZERS[name]
    engine.manual_seed(1)
    model = nn.MLP([4, 5, 3], activation="tanh")
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    params = [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]
    opt, ref = make(model.parameters()), make_ref(params)
    x, y = problem()
    for _ in range(20):
        loss = F.cross_entropy(model(Tensor(x, dtype=np.float64)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        h = torch.tanh(torch.from_numpy(x) @ params[0].T + params[1]) @ params[2].T + params[3]
        rloss = torch.nn.functional.cross_entropy(h, torch.from_numpy(y))
        ref.zero_grad()
        rloss.backward()
        ref.step()
        assert loss.item() == pytest.approx(rloss.item(), rel=1e-9)
    for p, r in zip(model.parameters(), params):
        np.testing.assert_allclose(p.data, r.detach().numpy(), rtol=1e-8, atol=1e-10)


def test_schedules_match_pytorch() -> None:
    p = [nn.Parameter(np.zeros(1))]
    tp = [torch.zeros(1, requires_grad=True)]
    for ours, theirs in [
        (
            lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        ),
        (
            lambda o: optim.CosineAnnealingLR(o, t_max=10, eta_min=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
        ),
    ]:
        o, to = optim.SGD(p, lr=0.1), torch.optim.SGD(tp, lr=0.1)
        s, ts = ours(o), theirs(to)
        for _ in range(12):
            to.step()
            s.step()
            ts.step()
            assert o.lr == pytest.approx(ts.get_last_lr()[0], rel=1e-12)


def test_bad_optimizer_arguments() -> None:
    p = [nn.Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(p, lr=0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError, match="require grad"):
        optim.SGD([Tensor([1.0])], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(p, betas=(1.0, 0.9))


def _train(
    model: nn.Module,
    opt: optim.Optimizer,
    sched: optim.LRScheduler,
    steps: range,
    x: np.ndarray,
    y: np.ndarray,
) -> list[float]:
    losses = []
    for i in steps:
        xb, yb = x[(i * 8) % 64 :][:8], y[(i * 8) % 64 :][:8]
        loss = F.cross_entropy(model(Tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 4 == 3:
            sched.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_checkpoint_resume_is_bit_identical(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype(np.float32), rng.integers(0, 4, 64)

    def fresh() -> tuple[nn.Module, optim.Optimizer, optim.LRScheduler]:
        engine.manual_seed(5)
        model = nn.MLP([6, 16, 4])
        opt = (
            optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
            if kind == "sgd"
            else optim.AdamW(model.parameters(), lr=1e-2)
        )
        return model, opt, optim.CosineAnnealingLR(opt, t_max=10)

    model, opt, sched = fresh()
    straight = _train(model, opt, sched, range(30), x, y)
    straight_weights = [p.data.copy() for p in model.parameters()]

    model, opt, sched = fresh()
    first = _train(model, opt, sched, range(13), x, y)
    save_checkpoint(tmp_path / "ckpt.npz", model, opt, sched, meta={"step": 13})
    model2, opt2, sched2 = fresh()
    _train(model2, opt2, sched2, range(3), x, y)  # wander off, then restore over it
    assert load_checkpoint(tmp_path / "ckpt.npz", model2, opt2, sched2) == {"step": 13}
    rest = _train(model2, opt2, sched2, range(13, 30), x, y)
    assert first + rest == straight
    assert all(np.array_equal(w, q.data) for w, q in zip(straight_weights, model2.parameters()))


def test_checkpoint_errors_are_clear(tmp_path: Path) -> None:
    model = nn.MLP([3, 2])
    path = save_checkpoint(tmp_path / "c.npz", model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path, model, optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path, nn.MLP([3, 5]))
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "cut.npz", model)
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.npz", model)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "missing.npz", model)


def test_optimizer_state_refuses_unknown_hyperparameters() -> None:
    opt = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1)
    sd = opt.state_dict()
    sd["hyper"]["params"] = []  # a crafted file must not overwrite arbitrary attributes
    with pytest.raises(ValueError, match="unknown SGD hyperparameters"):
        opt.load_state_dict(sd)
    assert len(opt.params) == 1
