"""Fuzzing the engine's file readers: the MNIST loader (beyond read_idx's own fuzz test in
test_mnist.py) and checkpoints. Mutated bytes give our own error type, never a numpy,
zipfile or json traceback; whatever does load is sound."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradscope.engine import nn, optim
from gradscope.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gradscope.engine.mnist import SPLITS, MnistError, load_mnist, read_idx

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def idx(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def damage(data: bytes, flips: list[tuple[int, int]], cut: int, extra: bytes) -> bytes:
    """Flip some bytes, cut some off the end, append some."""
    out = bytearray(data)
    for i, x in flips:
        if out:
            out[i % len(out)] ^= x
    return bytes(out[: max(0, len(out) - cut)]) + extra


DAMAGE = {
    "flips": st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3),
    "cut": st.one_of(st.just(0), st.integers(0, 64)),
    "extra": st.one_of(st.just(b""), st.binary(max_size=8)),
}


# -- the MNIST loader ----------------------------------------------------------------------


def test_the_real_label_file_damaged_gives_mnist_error(real_mnist: Path, tmp_path: Path) -> None:
    """The real t10k labels (10,008 bytes): every damaged version is refused or, if it still
    parses, holds 10,000 digits at most; never another exception."""
    real = gzip.decompress((real_mnist / "t10k-labels-idx1-ubyte.gz").read_bytes())
    path = tmp_path / "t10k-labels-idx1-ubyte"

    @FUZZ
    @given(**DAMAGE)
    def check(flips: list[tuple[int, int]], cut: int, extra: bytes) -> None:
        path.write_bytes(damage(real, [(i % 16, x) for i, x in flips], cut, extra))
        try:
            labels = read_idx(path)
        except MnistError as e:
            assert str(path) in str(e)
        else:
            assert labels.dtype == np.uint8 and labels.ndim in (1, 3)

    check()


@st.composite
def splits(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A small split, mostly consistent, sometimes not: wrong counts, shapes, labels."""
    n = draw(st.integers(0, 4))
    side = draw(st.sampled_from([28, 28, 28, 27, 1]))
    images = np.full((n, side, side), draw(st.integers(0, 255)), dtype=np.uint8)
    m = draw(st.sampled_from([n, n, n, max(0, n - 1), n + 1]))
    labels = np.array(draw(st.lists(st.integers(0, 12), min_size=m, max_size=m)), np.uint8)
    return images, labels


@FUZZ
@given(split=splits(), which=st.sampled_from([0, 1, None]), compress=st.booleans(), **DAMAGE)
def test_fuzz_load_mnist_returns_a_split_or_mnist_error(
    tmp_path_factory: pytest.TempPathFactory,
    split: tuple[np.ndarray, np.ndarray],
    which: int | None,
    compress: bool,
    flips: list[tuple[int, int]],
    cut: int,
    extra: bytes,
) -> None:
    folder = tmp_path_factory.mktemp("split")
    contents = [idx(split[0]), idx(split[1])]
    if which is not None:  # damage one file (before compression, or the gzip stream)
        if compress:
            contents[which] = damage(gzip.compress(contents[which]), flips, cut, extra)
        else:
            contents[which] = damage(contents[which], flips, cut, extra)
    for name, data in zip(SPLITS["test"], contents):
        if compress and not (which is not None and data is contents[which]):
            data = gzip.compress(data)
        (folder / name).write_bytes(data)
    try:
        x, y = load_mnist("test", directory=folder, download=False)
    except MnistError as e:
        assert str(folder) in str(e)
    else:
        assert x.dtype == np.float32 and x.shape == (len(y), 784)
        assert x.min(initial=0) >= 0 and x.max(initial=0) <= 1
        assert y.dtype == np.int64 and ((y >= 0) & (y <= 9)).all()


# -- checkpoints ---------------------------------------------------------------------------


def _model() -> tuple[nn.Module, optim.Optimizer]:
    model = nn.MLP([3, 4, 2])
    return model, optim.Adam(model.parameters(), lr=0.01)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
ARRAYS = st.sampled_from(
    [
        np.zeros((4, 3), np.float32),
        np.zeros((3, 4), np.float32),
        np.zeros(4, np.float64),
        np.full((4, 3), np.nan, np.float32),
        np.array(["a", "b"]),
        np.zeros((4, 3), np.complex64),
        np.zeros((4, 3), bool),
        np.array(7),
    ]
)


@st.composite
def spoiled_checkpoints(draw: st.DrawFn, valid: bytes) -> bytes:
    """A real checkpoint with its bytes damaged, an entry replaced, dropped or added, or
    the JSON header rewritten (a field changed to any JSON value)."""
    how = draw(st.sampled_from(["bytes", "entry", "drop", "header"]))
    if how == "bytes":
        return damage(valid, draw(DAMAGE["flips"]), draw(DAMAGE["cut"]), draw(DAMAGE["extra"]))
    members = _members(valid)
    names = sorted(members)
    if how == "entry":
        members[draw(st.sampled_from(names))] = _npy(draw(ARRAYS))
    elif how == "drop":
        del members[draw(st.sampled_from(names))]
    else:
        header = json.loads(str(np.load(io.BytesIO(members["header.npy"]))))
        path = draw(
            st.sampled_from(
                [
                    (),
                    ("format",),
                    ("meta",),
                    ("optimizer",),
                    ("optimizer", "type"),
                    ("optimizer", "hyper"),
                    ("optimizer", "hyper", "lr"),
                    ("optimizer", "hyper", "betas"),
                    ("optimizer", "steps"),
                    ("optimizer", "buffers"),
                ]
            )
        )
        value = draw(JSON)
        if path:
            node = header
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        else:
            header = value
        members["header.npy"] = _npy(np.array(json.dumps(header)))
    return _zip(members)


def test_fuzz_load_checkpoint_restores_or_raises_checkpoint_error(tmp_path: Path) -> None:
    model, opt = _model()
    for p in model.parameters():  # a few steps' worth of optimizer state
        p.grad = np.ones_like(p.data)
    opt.step()
    path = save_checkpoint(tmp_path / "good.npz", model, opt, meta={"step": 1})
    valid = path.read_bytes()
    spoiled = tmp_path / "spoiled.npz"

    @FUZZ
    @given(data=spoiled_checkpoints(valid))
    def check(data: bytes) -> None:
        spoiled.write_bytes(data)
        target, target_opt = _model()
        before = [p.data.copy() for p in target.parameters()]
        before_opt = target_opt.state_dict()
        try:
            meta = load_checkpoint(spoiled, target, target_opt)
        except CheckpointError as e:
            assert str(spoiled) in str(e)
            # A refused file changes nothing.
            assert all(np.array_equal(a, p.data) for a, p in zip(before, target.parameters()))
            after = target_opt.state_dict()
            assert after["hyper"] == before_opt["hyper"] and after["steps"] == before_opt["steps"]
        else:
            assert isinstance(meta, dict)
            for p, q in zip(target.parameters(), model.parameters()):
                assert p.data.dtype == q.data.dtype and p.data.shape == q.data.shape
                assert np.isfinite(p.data).all()
            sd = target_opt.state_dict()
            assert isinstance(sd["steps"], int) and sd["steps"] >= 0
            assert all(isinstance(v, float | int | bool | tuple) for v in sd["hyper"].values())
            x = nn.Tensor(np.ones((2, 3), np.float32)) if hasattr(nn, "Tensor") else None
            if x is not None:
                target(x).sum().backward()
                target_opt.step()  # the restored optimizer still works

    check()
