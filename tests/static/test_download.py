"""An MNIST run started without the files downloads them from GRADSCOPE_MNIST_MIRRORS (here a
throttled mirror on loopback that serves the real files), records the progress as `download`
events, and the run page shows it in a banner until the run starts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from gradscope.engine import mnist
from gradscope.server.runs.events import validate_event
from gradscope.server.settings import Settings
from tests.server.conftest import QuietHandler, Server, http_service
from tests.static.test_timeline import TIMEOUT

# The big file comes slowly (about 3 s), so the page sees the download in progress.
SLOW_FILE, SLOW_BYTES_PER_S = "train-images-idx3-ubyte.gz", 3_000_000


@pytest.fixture(scope="module")
def mirror(real_mnist: Path) -> Iterator[str]:
    """A loopback HTTP mirror of the real MNIST files, with Content-Length, one file slow."""

    class Files(QuietHandler):
        def _file(self) -> Path | None:
            name = self.path.rsplit("/", 1)[-1]
            return real_mnist / name if name in mnist.FILES else None

        def do_HEAD(self) -> None:
            path = self._file()
            self.send_response(200 if path else 404)
            self.send_header("Content-Length", str(path.stat().st_size if path else 0))
            self.end_headers()

        def do_GET(self) -> None:
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            chunk = 1 << 18
            pause = chunk / SLOW_BYTES_PER_S if path.name == SLOW_FILE else 0.0
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i : i + chunk])
                time.sleep(pause)

    with http_service(Files) as url:
        yield url + "mnist/"


@pytest.fixture(scope="module")
def fetching(tmp_path_factory: pytest.TempPathFactory, mirror: str) -> Iterator[Server]:
    """A server whose MNIST folder starts empty, downloading from the loopback mirror."""
    tmp = tmp_path_factory.mktemp("download")
    env = {"GRADSCOPE_MNIST_DIR": str(tmp / "mnist"), "GRADSCOPE_MNIST_MIRRORS": mirror}
    s = Server(tmp / "data", env).start()
    try:
        yield s
    finally:
        s.stop()


def test_a_download_shows_its_progress_on_the_run_page(fetching: Server, page: Any) -> None:
    run = fetching.create("mnist-mlp", steps=2)
    page.goto(f"{fetching.url}/runs/{run['id']}")
    banner = page.locator("#download-banner")
    expect(banner).to_be_visible(timeout=TIMEOUT)
    expect(banner).to_contain_text(f"Downloading {SLOW_FILE}", timeout=TIMEOUT)
    # Part of the way: the bar and the text say how far, before the file is in.
    page.wait_for_function(
        """() => { const bar = document.querySelector('#download-banner progress');
                   return bar.value > 0 && bar.value < bar.max; }""",
        timeout=TIMEOUT,
    )
    expect(banner).to_contain_text("%")
    page.screenshot(path=str(Path(fetching.data_dir).parent / "downloading.png"))
    # Once the files are in, the run trains; the banner goes.
    badge = page.locator("#state-badge")
    expect(badge).to_have_attribute("data-state", "finished", timeout=TIMEOUT)
    expect(banner).to_be_hidden()

    events = [e for e in fetching.events(run["id"]) if e["type"] == "download"]
    for e in events:
        validate_event(e)
    downloads = [e["data"] for e in events]
    assert {d["file"] for d in downloads} == set(mnist.FILES)
    folder = Path(fetching.env["GRADSCOPE_MNIST_DIR"])
    for name in mnist.FILES:
        seen = [d for d in downloads if d["file"] == name]
        size = (folder / name).stat().st_size
        assert seen[0]["done"] == 0 and seen[-1]["done"] == size, seen
        assert all(d["total"] == size for d in seen)
        assert [d["done"] for d in seen] == sorted(d["done"] for d in seen)
    slow = [d for d in downloads if d["file"] == SLOW_FILE]
    assert len(slow) >= 4, slow  # reported along the way, not only at the ends
    # A second run finds the files in place: nothing is downloaded again.
    again = fetching.create("mnist-mlp", steps=1)
    fetching.wait_for(again["id"], lambda r: r["state"] == "finished")
    assert not [e for e in fetching.events(again["id"]) if e["type"] == "download"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("ftp://x/", "is not a base URL"), (",", "at least one base URL")],
)
def test_bad_mirror_settings_are_refused_naming_the_variable(
    value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADSCOPE_MNIST_MIRRORS", value)
    with pytest.raises(ValueError, match="GRADSCOPE_MNIST_MIRRORS") as info:
        Settings.from_env()
    assert message in str(info.value)
