"""engine.mnist: the real MNIST files, corrupt files, downloads from a local server, offline."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradscope.engine.mnist import FILES, SHA256, MnistError, load_mnist, mnist_dir, read_idx


def gz(data: bytes) -> bytes:
    """gzip with a fixed time stamp: test ids stay the same in every process (pytest-xdist)."""
    return gzip.compress(data, mtime=0)


TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CLOSED_PORT = "http://127.0.0.1:9/"  # the discard port: nothing listens, refused at once


def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed IDX file holding a uint8 array."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray, split: str = "t10k") -> None:
    """Write a (small) MNIST split with the standard file names."""
    (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gz(idx_bytes(images)))
    (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gz(idx_bytes(labels)))


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """serve(folder) -> the URL of a local HTTP server (own thread, ephemeral port) for it."""
    servers = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
        )
        # A short poll interval: shutdown() waits for the loop to notice.
        serve = functools.partial(server.serve_forever, poll_interval=0.02)
        threading.Thread(target=serve, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk to 127.0.0.1 directly, whatever proxy the machine running the tests has."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


# -- the real files ------------------------------------------------------------------


@pytest.mark.parametrize(
    "split, n, counts", [("train", 60000, TRAIN_COUNTS), ("test", 10000, TEST_COUNTS)]
)
def test_real_mnist(real_mnist: Path, split: str, n: int, counts: list[int]) -> None:
    X, y = load_mnist(split, directory=real_mnist, download=False)
    assert X.shape == (n, 784) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == counts

    raw, y2 = load_mnist(split, directory=real_mnist, download=False, normalize=False)
    assert raw.dtype == np.uint8 and raw.max() == 255 and np.array_equal(y, y2)
    assert np.array_equal(X, raw.astype(np.float32) / np.float32(255))
    if split == "test":  # the float64 copy of the training set would take 376 MB
        X64, _ = load_mnist(split, directory=real_mnist, download=False, dtype=np.float64)
        assert X64.dtype == np.float64 and np.allclose(X64, X, atol=1e-7)


def test_real_mnist_files_match_their_checksums(real_mnist: Path) -> None:
    for name in FILES:
        assert hashlib.sha256((real_mnist / name).read_bytes()).hexdigest() == SHA256[name]


def test_cached_arrays_cannot_be_corrupted_by_callers(real_mnist: Path) -> None:
    X, y = load_mnist("test", directory=real_mnist, download=False, normalize=False)
    X[:] = 0
    y[:] = 0
    X2, y2 = load_mnist("test", directory=real_mnist, download=False, normalize=False)
    assert X2.max() == 255 and np.bincount(y2).tolist() == TEST_COUNTS


def test_read_idx_on_real_files(real_mnist: Path) -> None:
    labels = read_idx(real_mnist / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8 and labels.flags.writeable
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


# -- reading small and corrupt files -------------------------------------------------


def test_read_idx_round_trip_compressed_and_not(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(a))
    (tmp_path / "a.gz").write_bytes(gz(idx_bytes(a)))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), a)
    assert np.array_equal(read_idx(str(tmp_path / "a.gz")), a)


def valid_gz() -> bytes:
    return gz(idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5)))


@pytest.mark.parametrize(
    "content, message",
    [
        (valid_gz()[:-10], "truncated"),
        (valid_gz()[:30], "truncated"),
        (b"just some text, not gzip", "not a valid gzip file"),
        (b"", "the file is empty"),
        (gz(b""), "the file is empty"),
        (gz(b"\x00\x00"), "too short for an IDX header"),
        (gz(b"\x00\x00\x08\x03\x00"), "header cut off"),
        (gz(b"\x00\x00\x08\x02" + struct.pack(">II", 1, 1) + b"x"), "magic"),
        (gz(b"\x1f\x8b\x08\x03" + struct.pack(">III", 1, 1, 1) + b"x"), "magic"),
        (gz(struct.pack(">IIII", 2051, 3, 4, 5) + bytes(59)), "truncated"),
        (gz(struct.pack(">IIII", 2051, 3, 4, 5) + bytes(61)), "extra bytes"),
        (gz(struct.pack(">II", 2049, 2**31) + bytes(9)), "too many"),
    ],
)
def test_corrupt_files_raise_mnist_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(MnistError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_trailer_is_caught(tmp_path: Path) -> None:
    content = bytearray(valid_gz())
    content[-8] ^= 0xFF  # the CRC32 of the data
    path = tmp_path / "bad-crc.gz"
    path.write_bytes(bytes(content))
    with pytest.raises(MnistError, match=r"bad-crc\.gz"):
        read_idx(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(MnistError, match="no such file"):
        read_idx(tmp_path / "nothing.gz")
    with pytest.raises(MnistError, match="cannot be read"):
        read_idx(tmp_path)


SMALL = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


def mutations() -> st.SearchStrategy[bytes]:
    """Random bytes, cut-offs and byte flips of a small valid IDX file."""
    flips = st.lists(
        st.tuples(st.integers(0, len(SMALL) - 1), st.integers(1, 255)), min_size=1, max_size=4
    )

    def flip(pairs: list[tuple[int, int]]) -> bytes:
        out = bytearray(SMALL)
        for i, x in pairs:
            out[i] ^= x
        return bytes(out)

    return st.one_of(
        st.binary(max_size=80),
        st.integers(0, len(SMALL)).map(lambda k: SMALL[:k]),
        flips.map(flip),
        st.binary(min_size=1, max_size=8).map(lambda extra: SMALL + extra),
    )


@settings(max_examples=300, deadline=None)
@given(
    content=mutations(),
    compress=st.booleans(),
    cut=st.integers(0, 40),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 200), st.integers(1, 255))),
)
def test_fuzz_read_idx_returns_an_array_or_mnist_error(
    tmp_path_factory: pytest.TempPathFactory,
    content: bytes,
    compress: bool,
    cut: int,
    flip: tuple[int, int] | None,
) -> None:
    raw = content
    if compress:  # then also damage the gzip stream itself: a flipped byte, a cut-off end
        content = bytearray(gz(content))
        if flip is not None:
            content[flip[0] % len(content)] ^= flip[1]
        content = bytes(content[: max(0, len(content) - cut)])
    path = tmp_path_factory.getbasetemp() / ("fuzz.gz" if compress else "fuzz.idx")
    path.write_bytes(content)
    try:
        array = read_idx(path)
    except MnistError as e:
        assert str(path) in str(e)
    else:  # only a file that is exactly this array's IDX encoding may load
        assert array.dtype == np.uint8 and array.ndim in (1, 3)
        assert idx_bytes(array) == (gzip.decompress(content) if compress else raw)


# -- load_mnist on small folders -----------------------------------------------------


def test_load_small_split(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write_split(tmp_path, images, labels)
    X, y = load_mnist("test", directory=tmp_path, download=False)
    assert X.shape == (5, 784) and y.tolist() == [3, 1, 4, 1, 5] and y.dtype == np.int64
    np.testing.assert_array_equal(X, images.reshape(5, 784) / np.float32(255))


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((3, 28, 28)), np.zeros(2), "3 images but .* 2 labels"),
        (np.zeros((2, 28, 27)), np.zeros(2), r"shape \(N, 28, 28\)"),
        (np.zeros((2, 28, 28)), np.array([1, 10]), "label 10 is not a digit"),
        (np.zeros(2), np.zeros(2), r"shape \(N, 28, 28\)"),
    ],
)
def test_load_inconsistent_split(
    tmp_path: Path, images: np.ndarray, labels: np.ndarray, message: str
) -> None:
    write_split(tmp_path, images, labels)
    with pytest.raises(MnistError, match=message):
        load_mnist("test", directory=tmp_path, download=False)


def test_load_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split must be"):
        load_mnist("validation", directory=tmp_path)
    with pytest.raises(ValueError, match="floating-point"):
        load_mnist("test", directory=tmp_path, dtype=np.int32)


def assert_names_folder_and_files(error: MnistError, folder: Path) -> None:
    text = str(error)
    assert str(folder) in text and "GRADSCOPE_MNIST_DIR" in text
    assert all(name in text for name in FILES), text


def test_missing_files_without_download(tmp_path: Path) -> None:
    with pytest.raises(MnistError) as info:
        load_mnist("train", directory=tmp_path, download=False)
    assert_names_folder_and_files(info.value, tmp_path)


def test_offline_download_fails_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "mnist"
    with pytest.raises(MnistError, match=r"ConnectionRefused|URLError") as info:
        load_mnist("test", directory=folder, mirrors=[CLOSED_PORT, "not a url"])
    assert_names_folder_and_files(info.value, folder)
    assert CLOSED_PORT in str(info.value) and list(folder.iterdir()) == []


# -- downloads from a local server ---------------------------------------------------


def test_download_from_local_mirror(
    real_mnist: Path, tmp_path: Path, serve: Callable[[Path], str]
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(real_mnist / name, served / name)
    folder = tmp_path / "cache"
    # The first mirror misses (404), the second serves: it falls through to it.
    X, y = load_mnist("test", directory=folder, mirrors=[serve(tmp_path), serve(served)])
    assert sorted(p.name for p in folder.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    for p in folder.iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == SHA256[p.name]
    X2, y2 = load_mnist("test", directory=real_mnist, download=False)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)


def test_checksum_mismatch_keeps_nothing(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    served = tmp_path / "served"
    served.mkdir()
    # Well-formed MNIST files, just not the real ones.
    write_split(served, np.zeros((1, 28, 28)), np.zeros(1))
    folder = tmp_path / "cache"
    with pytest.raises(MnistError, match="SHA256 checksum mismatch") as info:
        load_mnist("test", directory=folder, mirrors=[serve(served)])
    assert_names_folder_and_files(info.value, folder)
    assert list(folder.iterdir()) == []


# -- where the files live ------------------------------------------------------------


def test_mnist_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRADSCOPE_MNIST_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert mnist_dir() == tmp_path / "home" / ".cache" / "gradscope" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert mnist_dir() == tmp_path / "home" / ".cache" / "gradscope" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_dir() == tmp_path / "xdg" / "gradscope" / "mnist"
    monkeypatch.setenv("GRADSCOPE_MNIST_DIR", str(tmp_path / "mine"))
    assert mnist_dir() == tmp_path / "mine"


def test_default_directory_is_mnist_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRADSCOPE_MNIST_DIR", str(tmp_path))
    write_split(tmp_path, np.full((2, 28, 28), 255), np.array([7, 2]))
    X, y = load_mnist("test", download=False)
    assert X.shape == (2, 784) and (X == 1.0).all() and y.tolist() == [7, 2]
