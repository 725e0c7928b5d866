"""MNIST: read the IDX files, find them in a per-user cache, download them when missing.

A download is streamed to a temporary file beside its destination, checked against the
SHA256 sums of the original files, and only then renamed into place, so the folder never
holds a partial or wrong file. Every failure is an `MnistError` that names the file or
folder and says what is wrong.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import math
import os
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import DTypeLike

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILES = (*SPLITS["train"], *SPLITS["test"])
# The SHA256SUMS of the original files, as `sha256sum` prints them.
_SHA256SUMS = """\
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
"""
SHA256 = {name: digest for digest, name in map(str.split, _SHA256SUMS.splitlines())}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
ENV_VAR = "GRADSCOPE_MNIST_DIR"
TIMEOUT_S = 30.0
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
# Far above MNIST's 47 MB, far below what a corrupt header could claim (2**96 bytes).
MAX_PAYLOAD = 1 << 30
_CHUNK = 1 << 20
REPORT_EVERY_S = 0.5  # progress reports while downloading, at most this often
# Told of a download's progress: (file name, bytes so far, bytes in all or 0 when unknown).
Progress = Callable[[str, int, int], None]


class MnistError(ValueError):
    """MNIST files that are missing, corrupt or cannot be downloaded."""


# -- reading IDX files ---------------------------------------------------------------


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The uint8 array in an IDX file (gzip-compressed when its name ends in .gz)."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            return _parse_idx(f, path)
    except FileNotFoundError:
        raise MnistError(f"{path}: no such file") from None
    except OSError as e:
        if e.errno is not None:  # the file system refused: a folder, no permission, ...
            raise MnistError(f"{path}: cannot be read ({e.strerror})") from None
        # gzip.BadGzipFile (not gzip, bad CRC) is an OSError without an errno.
        raise MnistError(f"{path}: not a valid gzip file ({e})") from None
    except (EOFError, zlib.error) as e:
        raise MnistError(f"{path}: corrupt or truncated gzip stream ({e})") from None


def _read_exactly(f: BinaryIO, size: int) -> bytearray:
    """Up to `size` bytes, in chunks: a lying header must not make us allocate it at once."""
    out = bytearray()
    while len(out) < size:
        part = f.read(min(size - len(out), _CHUNK))
        if not part:
            break
        out += part
    return out


def _parse_idx(f: BinaryIO, path: Path) -> np.ndarray:
    """Check the header (magic, type, dimensions) and that the payload fills it exactly."""
    magic_bytes = _read_exactly(f, 4)
    if not magic_bytes:
        raise MnistError(f"{path}: the file is empty (an IDX header was expected)")
    if len(magic_bytes) < 4:
        raise MnistError(f"{path}: only {len(magic_bytes)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", magic_bytes)
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise MnistError(
            f"{path}: bad magic number 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x} (images)"
            f" or 0x{LABEL_MAGIC:08x} (labels)"
        )
    ndim = magic & 0xFF
    dims_bytes = _read_exactly(f, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise MnistError(f"{path}: header cut off: {ndim} dimensions announced, not all there")
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    size = math.prod(dims)
    if size > MAX_PAYLOAD:
        raise MnistError(f"{path}: header dimensions {dims} claim {size} bytes, too many")
    payload = _read_exactly(f, size)
    if len(payload) < size:
        raise MnistError(
            f"{path}: payload is {len(payload)} bytes, but the header's dimensions {dims}"
            f" need {size}: the file is truncated"
        )
    if f.read(1):
        raise MnistError(f"{path}: extra bytes after the {size}-byte payload of shape {dims}")
    # A bytearray, so the array we hand out is writeable (np.frombuffer on bytes is not).
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


# -- where the files live ------------------------------------------------------------


def mnist_dir() -> Path:
    """$GRADSCOPE_MNIST_DIR if set, else $XDG_CACHE_HOME/gradscope/mnist (~/.cache/...)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says to ignore a relative XDG_CACHE_HOME.
    base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "gradscope" / "mnist"


def _missing_message(folder: Path, reason: str) -> str:
    """What to do first, in one sentence; why after it."""
    return (
        f"MNIST is not in {folder}: put the four files there ({', '.join(FILES)}) or set "
        f"{ENV_VAR} to a folder that holds them. ({reason})"
    )


def missing_files(folder: str | os.PathLike[str] | None = None) -> list[str]:
    """The MNIST files not in `folder` (default `mnist_dir()`)."""
    where = Path(folder).expanduser() if folder is not None else mnist_dir()
    return [name for name in FILES if not (where / name).is_file()]


def reachable_mirror(mirrors: Sequence[str] = MIRRORS, timeout: float = 3.0) -> str | None:
    """The first mirror that answers a HEAD for a file, or None (offline, all down)."""
    for mirror in mirrors:
        request = urllib.request.Request(mirror.rstrip("/") + "/" + FILES[0], method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if response.status < 400:
                    return mirror
        except (OSError, ValueError, http.client.HTTPException):
            continue
    return None


# -- downloading ---------------------------------------------------------------------


def _fetch(url: str, tmp: Path, name: str, progress: Progress | None = None) -> str:
    """Stream `url` into `tmp`, reporting progress on stderr (and to `progress`); its SHA256."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        if progress is not None:
            progress(name, 0, total)  # at once: a page shows the download before its first chunk
        done, last = 0, time.monotonic()
        while chunk := response.read(1 << 16):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            now = time.monotonic()
            if now - last >= REPORT_EVERY_S or done == total:
                last = now
                of = f" of {total:,} ({100 * done / total:.0f}%)" if total else ""
                print(f"  {name}: {done:,} bytes{of}", file=sys.stderr)
                if progress is not None:
                    progress(name, done, total)
        if progress is not None and not total:  # no Content-Length: the end, said once
            progress(name, done, done)
    return digest.hexdigest()


def _download(
    name: str, folder: Path, mirrors: Sequence[str], progress: Progress | None = None
) -> None:
    """Fetch `name` from the first mirror that serves the right bytes, into `folder`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistError(_missing_message(folder, f"cannot create the folder ({e})")) from None
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        print(f"downloading {url}", file=sys.stderr)
        tmp: Path | None = None
        try:
            fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
            os.close(fd)
            tmp = Path(tmp_name)
            got = _fetch(url, tmp, name, progress)
            if got != SHA256[name]:
                failures.append(f"{url}: SHA256 checksum mismatch (got {got})")
                continue
            os.replace(tmp, folder / name)
            return
        except (OSError, ValueError, http.client.HTTPException) as e:
            # URLError, HTTPError and timeouts are OSErrors; a malformed URL is a ValueError.
            failures.append(f"{url}: {type(e).__name__}: {e}")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    tried = "; ".join(failures) or "no mirrors given"
    reason = f"downloading {name} failed: {tried}"
    raise MnistError(_missing_message(folder, reason))


# -- loading -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _load_raw(images: Path, labels: Path, stamp: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Decoded, checked, read-only arrays; `stamp` (mtimes, sizes) drops a stale entry."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise MnistError(f"{images}: expected images of shape (N, 28, 28), got {x.shape}")
    if y.ndim != 1:
        raise MnistError(f"{labels}: expected a 1-D label file, got shape {y.shape}")
    if len(x) != len(y):
        raise MnistError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    if y.size and y.max() > 9:
        raise MnistError(f"{labels}: label {y.max()} is not a digit 0-9")
    x = x.reshape(len(x), 28 * 28)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_mnist(
    split: str = "train",
    directory: str | os.PathLike[str] | None = None,
    download: bool = True,
    dtype: DTypeLike = np.float32,
    normalize: bool = True,
    mirrors: Sequence[str] = MIRRORS,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's images as X (N, 784) and digits as y (N,) int64; split is "train" or "test".

    X is `dtype` scaled to [0, 1] when `normalize`, else the raw uint8 pixels (dtype
    unused). The files are looked up in `directory` (default `mnist_dir()`) and, when
    missing and `download` is true, fetched from `mirrors` and checked by SHA256 (each
    file's progress goes to `progress`, if given, as well as to stderr).
    Files already present are not hashed on every load: read_idx checks their structure,
    and a user may point the folder at a drop-in set with the same names (Fashion-MNIST).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    dt = np.dtype(dtype)
    if normalize and dt.kind != "f":
        raise ValueError(f"normalize needs a floating-point dtype, got {dt}")
    folder = Path(directory).expanduser() if directory is not None else mnist_dir()
    for name in SPLITS[split]:
        if not (folder / name).is_file():
            if not download:
                raise MnistError(_missing_message(folder, f"{folder / name} is missing"))
            _download(name, folder, mirrors, progress)
    paths = [(folder / name).resolve() for name in SPLITS[split]]
    stats = [p.stat() for p in paths]
    stamp = tuple(v for st in stats for v in (st.st_mtime_ns, st.st_size))
    x, y = _load_raw(*paths, stamp)
    if normalize:
        # Divide in the target dtype, by a scalar of that dtype: a float64 detour would
        # double the peak memory, and a mixed-type ufunc loop is several times slower.
        out = x.astype(dt)
        out /= dt.type(255)
        return out, y.astype(np.int64)
    return x.copy(), y.astype(np.int64)
