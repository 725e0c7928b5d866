"""engine.nn: modules, parameters, state dicts and model files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gradscope.engine.nn.functional as F
from gradscope import engine
from gradscope.engine import Tensor, nn


def torch_twin(model: nn.MLP) -> torch.nn.Sequential:
    """The same MLP in PyTorch holding the same weights (names line up: 0.weight, ...)."""
    layers: list[torch.nn.Module] = []
    for m in model.layers:
        if isinstance(m, nn.Linear):
            layers.append(torch.nn.Linear(m.in_features, m.out_features, dtype=torch.float64))
        else:
            layers.append(
                {"ReLU": torch.nn.ReLU, "Tanh": torch.nn.Tanh, "Sigmoid": torch.nn.Sigmoid}[
                    type(m).__name__
                ]()
            )
    twin = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for (n, p), (tn, tp) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
            assert n == tn
            tp.copy_(torch.from_numpy(p.data.astype(np.float64)))
    return twin


def test_mlp_structure_names_and_init() -> None:
    engine.manual_seed(3)
    m = nn.MLP([4, 8, 3], activation="tanh")
    assert [type(x).__name__ for x in m.layers] == ["Linear", "Tanh", "Linear"]
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert m.num_parameters() == 4 * 8 + 8 + 8 * 3 + 3
    w = m.layers[0].weight
    assert w.dtype == np.float32 and w.requires_grad and np.abs(w.data).max() <= 0.5
    engine.manual_seed(3)
    assert np.array_equal(nn.MLP([4, 8, 3]).layers[0].weight.data, w.data)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_mlp_forward_backward_match_pytorch(activation: str) -> None:
    engine.manual_seed(0)
    m = nn.MLP([5, 7, 6, 3], activation=activation)
    for p in m.parameters():
        p.data = p.data.astype(np.float64)
    twin = torch_twin(m)
    x = np.random.default_rng(0).normal(size=(9, 5))
    y = np.arange(9) % 3
    loss = F.cross_entropy(m(Tensor(x, dtype=np.float64)), y)
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    for p, tp in zip(m.parameters(), twin.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_train_eval_zero_grad_and_no_grad() -> None:
    m = nn.MLP([2, 3, 1])
    assert m.training and all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    F.mse_loss(m(Tensor([[1.0, 2.0]])), [[0.0]]).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    with engine.no_grad():
        out = m(Tensor([[1.0, 2.0]]))
    assert not out.requires_grad and out._prev == ()
    d = m(Tensor([[1.0, 2.0]])).detach()
    assert not d.requires_grad


def test_state_dict_round_trip_and_errors() -> None:
    a, b = nn.MLP([3, 4, 2]), nn.MLP([3, 4, 2])
    sd = a.state_dict()
    sd["0.weight"][0, 0] = 123.0  # a copy: the model is untouched
    assert a.layers[0].weight.data[0, 0] != 123.0
    w_before = b.layers[0].weight
    b.load_state_dict(a.state_dict())
    assert b.layers[0].weight is w_before  # loaded in place
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({"0.weight": sd["0.weight"]})
    bad = a.state_dict()
    bad["0.weight"] = np.zeros((5, 5))
    with pytest.raises(ValueError, match=r"0\.weight: shape \(5, 5\)"):
        b.load_state_dict(bad)


def test_save_and_load_model_files(tmp_path: Path) -> None:
    m = nn.MLP([4, 6, 3], activation="tanh")
    npz, js = nn.save(m, tmp_path / "model")
    assert npz.name == "model.npz" and js.name == "model.json"
    assert json.loads(js.read_text())["architecture"]["sizes"] == [4, 6, 3]
    loaded = nn.load(tmp_path / "model")
    x = Tensor(np.random.default_rng(0).normal(size=(2, 4)))
    assert np.array_equal(loaded(x).data, m(x).data)
    seq = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Sigmoid(), nn.Identity())
    nn.save(seq, tmp_path / "seq")
    assert repr(nn.load(tmp_path / "seq")) == repr(seq)


def test_loading_never_unpickles_and_fails_clearly(tmp_path: Path) -> None:
    m = nn.MLP([2, 2])
    nn.save(m, tmp_path / "m")
    # An object array needs pickle to load: np.load(allow_pickle=False) must refuse it.
    np.savez(
        tmp_path / "m.npz",
        **{"0.weight": np.array([object()] * 4).reshape(2, 2), "0.bias": np.zeros(2)},
    )
    with pytest.raises(ValueError, match="cannot read the model weights"):
        nn.load(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the model architecture"):
        nn.load(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps({"architecture": {"type": "Conv9000"}}))
    with pytest.raises(ValueError, match="unknown module type"):
        nn.load(tmp_path / "m")


def test_bad_module_arguments() -> None:
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([2, 2], activation="gelu")
    with pytest.raises(ValueError, match="at least"):
        nn.MLP([2])
    with pytest.raises(ValueError, match="positive"):
        nn.Linear(0, 3)
