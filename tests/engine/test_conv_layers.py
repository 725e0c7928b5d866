"""engine.nn's image layers: PyTorch's modules, errors, dropout, checkpoints and training.

The layers are checked against torch.nn's (same weights in, same outputs, gradients and
BatchNorm buffers out), a small CNN trains three SGD steps in step with torch, and a
checkpoint restores parameters and buffers alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor, nn, optim
from gradscope.engine.checkpoint import load_checkpoint, save_checkpoint
from gradscope.engine.graph import to_dict, to_dot

TOL = {"rtol": 1e-9, "atol": 1e-11}


def _cnn(lib: object, bn: bool = False) -> object:
    """conv -> (bn) -> relu -> pool -> flatten -> linear, from engine.nn or torch.nn."""
    layers = [lib.Conv2d(2, 4, 3, padding=1)]
    if bn:
        layers.append(lib.BatchNorm2d(4))
    layers += [lib.ReLU(), lib.MaxPool2d(2), lib.Flatten(), lib.Linear(4 * 3 * 3, 5)]
    return lib.Sequential(*layers)


def _to_torch(ours: nn.Module, theirs: torch.nn.Module) -> None:
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})


def test_small_cnn_trains_in_step_with_torch_for_three_sgd_steps() -> None:
    engine.manual_seed(0)
    ours = _cnn(nn)
    for p in ours.parameters():
        p.data = p.data.astype(np.float64)
    theirs = _cnn(torch.nn).double()
    _to_torch(ours, theirs)
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    bufs: list[torch.Tensor | None] = [None] * len(opt.params)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, y = rng.normal(size=(6, 2, 6, 6)), rng.integers(0, 5, 6)
        opt.zero_grad()
        theirs.zero_grad()
        loss = F.cross_entropy(ours(Tensor(x, dtype=np.float64)), y)
        expected = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        expected.backward()
        assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.grad, q.grad.numpy(), **TOL, err_msg=name)
        opt.step()
        with torch.no_grad():  # torch.optim.SGD's rule (its first use costs seconds of imports)
            for i, q in enumerate(theirs.parameters()):
                bufs[i] = q.grad.clone() if bufs[i] is None else bufs[i] * 0.9 + q.grad
                q -= 0.1 * bufs[i]
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, q.detach().numpy(), **TOL)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_module_matches_torch_in_train_then_eval(momentum: float | None) -> None:
    ours = nn.BatchNorm2d(3, momentum=momentum, dtype=np.float64)
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.normal(size=3)))
    ours.weight.data[...] = theirs.weight.detach().numpy()
    for train in (True, True, True, False):
        ours.train(train)
        theirs.train(train)
        x = rng.normal(size=(4, 3, 5, 5)) * 3 + 2
        xo, xt = (
            Tensor(x, requires_grad=True, dtype=np.float64),
            torch.tensor(x, requires_grad=True),
        )
        yo, yt = ours(xo), theirs(xt)
        np.testing.assert_allclose(yo.data, yt.detach().numpy(), **TOL)
        up = rng.normal(size=x.shape)
        yo.backward(up)
        yt.backward(torch.tensor(up))
        np.testing.assert_allclose(xo.grad, xt.grad.numpy(), **TOL)
        for name, buf in theirs.named_buffers():
            np.testing.assert_allclose(getattr(ours, name).data, buf.numpy(), **TOL, err_msg=name)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), **TOL)
    assert int(ours.num_batches_tracked.data) == 3


def test_batchnorm2d_without_running_stats_uses_batch_stats_in_eval() -> None:
    ours = nn.BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    theirs = torch.nn.BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    x = np.random.default_rng(2).normal(size=(3, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).numpy(), atol=1e-5)
    assert ours.state_dict() == {} and list(ours.parameters()) == []


def test_default_init_is_torchs_distribution() -> None:
    engine.manual_seed(3)
    conv = nn.Conv2d(8, 16, 3, groups=2)
    assert conv.weight.shape == (16, 4, 3, 3) and conv.weight.dtype == np.float32
    bound = 1 / np.sqrt(4 * 9)  # kaiming_uniform(a=sqrt(5)) on fan_in = 36
    for p in (conv.weight, conv.bias):
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.9 * bound  # the whole range is used
    engine.manual_seed(3)
    np.testing.assert_array_equal(nn.Conv2d(8, 16, 3, groups=2).weight.data, conv.weight.data)


def test_layers_in_the_graph_with_their_op_and_shape() -> None:
    engine.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.AvgPool2d(2), nn.MaxPool2d(1),
        nn.Dropout(0.2), nn.Flatten(), nn.Linear(8, 3),
    )  # fmt: skip
    loss = F.cross_entropy(model(Tensor(np.ones((2, 1, 6, 6)))), [0, 2])
    loss.backward()
    d = to_dict(loss)
    shapes = {n["op"]: n["shape"] for n in d["nodes"] if n["op"]}
    assert shapes["conv2d"] == [2, 2, 4, 4] and shapes["batch_norm"] == [2, 2, 4, 4]
    assert shapes["avg_pool2d"] == [2, 2, 2, 2] and shapes["max_pool2d"] == [2, 2, 2, 2]
    assert shapes["dropout"] == [2, 2, 2, 2] and shapes["flatten"] == [2, 8]
    dot = to_dot(loss)
    for op in ("conv2d", "batch_norm", "max_pool2d", "avg_pool2d", "dropout", "flatten"):
        assert op in dot, op


def test_clear_errors_name_both_shapes() -> None:
    x = Tensor(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape("(2, 3, 4, 4)")) as e:
        F.conv2d(x, Tensor(np.zeros((5, 3, 7, 7), np.float32)), padding=1)
    assert "(5, 3, 7, 7)" in str(e.value) and "6x6" in str(e.value)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*3 channels.*\(5, 2, 3, 3\)"):
        F.conv2d(x, Tensor(np.zeros((5, 2, 3, 3), np.float32)))
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(2, 2, 3, 3\)"):
        nn.Conv2d(2, 2, 3)(x)  # the layer's channel count, not the input's
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*kernel \(5, 5\)"):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*kernel \(7, 7\)"):
        nn.AvgPool2d(7, padding=1)(x)
    with pytest.raises(ValueError, match=r"4-D.*\(3, 4, 4\)"):
        nn.Conv2d(3, 2, 3)(Tensor(np.zeros((3, 4, 4), np.float32)))
    with pytest.raises(ValueError, match=r"4-D.*\(2, 3\)"):
        nn.MaxPool2d(2)(Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"groups=2.*in_channels=3"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"groups=2 does not divide the 3 output"):
        F.conv2d(Tensor(np.zeros((1, 4, 5, 5))), Tensor(np.zeros((3, 2, 3, 3))), groups=2)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(4,\)"):
        nn.BatchNorm2d(4)(x)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3)(Tensor(np.zeros((1, 3, 1, 1), np.float32)))
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(x, 2, padding=2)


def test_dropout_statistics_scaling_gradient_and_eval_identity() -> None:
    engine.manual_seed(4)
    x = Tensor(np.ones((200, 500), np.float32), requires_grad=True)
    layer = nn.Dropout(0.3)
    y = layer(x)
    kept = y.data != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01  # 100,000 draws: sd ~0.0015
    np.testing.assert_allclose(y.data[kept], 1 / 0.7, rtol=1e-6)
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # d(x * mask)/dx is the mask
    engine.manual_seed(4)
    np.testing.assert_array_equal(nn.Dropout(0.3)(x).data, y.data)  # seeded
    layer.eval()
    assert layer(x) is x
    assert (nn.Dropout(1.0)(x).data == 0).all() and nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.Dropout(1.5)


def test_flatten_matches_torch_and_passes_gradients_back() -> None:
    a = np.random.default_rng(5).normal(size=(2, 3, 4, 5))
    for start, end in ((1, -1), (0, -1), (1, 2), (-2, -1), (2, 2)):
        t = Tensor(a, requires_grad=True, dtype=np.float64)
        y = nn.Flatten(start, end)(t)
        assert y.op == "flatten"
        np.testing.assert_array_equal(y.data, torch.flatten(torch.tensor(a), start, end).numpy())
        y.backward(np.arange(y.size, dtype=np.float64).reshape(y.shape))
        np.testing.assert_array_equal(t.grad, np.arange(a.size).reshape(a.shape))
    with pytest.raises(ValueError, match="flatten"):
        Tensor(a).flatten(3, 1)


def test_checkpoint_and_save_load_restore_parameters_and_buffers(tmp_path: Path) -> None:
    engine.manual_seed(6)
    model = _cnn(nn, bn=True)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = Tensor(np.random.default_rng(6).normal(size=(4, 2, 6, 6)).astype(np.float32))
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), [0, 1, 2, 3]).backward()
        opt.step()
    state = model.state_dict()
    assert state["1.num_batches_tracked"] == 2 and state["1.running_mean"].any()
    model.eval()
    expected = model(x).data
    save_checkpoint(tmp_path / "cnn.npz", model, opt)
    engine.manual_seed(7)
    fresh = _cnn(nn, bn=True)
    fresh_opt = optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    load_checkpoint(tmp_path / "cnn.npz", fresh, fresh_opt)
    for name, arr in fresh.state_dict().items():
        np.testing.assert_array_equal(arr, state[name], err_msg=name)
    np.testing.assert_array_equal(fresh.eval()(x).data, expected)
    nn.save(model, tmp_path / "model")
    rebuilt = nn.load(tmp_path / "model").eval()
    assert rebuilt.config() == model.config()
    np.testing.assert_array_equal(rebuilt(x).data, expected)


def test_module_config_rebuilds_every_layer_kind() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, (3, 5), stride=2, padding=(1, 2)),
        nn.Conv2d(4, 4, 3, padding="same", groups=2, bias=False),
        nn.MaxPool2d(3, 2, 1, dilation=1, ceil_mode=True),
        nn.AvgPool2d(2, count_include_pad=False, divisor_override=3),
        nn.BatchNorm2d(4, eps=1e-3, momentum=None),
        nn.Dropout(0.25),
        nn.Flatten(),
    )
    rebuilt = nn.from_config(model.config())
    assert rebuilt.config() == model.config()
    assert [type(m) for m in rebuilt.layers] == [type(m) for m in model.layers]
