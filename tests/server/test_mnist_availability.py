"""An MNIST run is refused at create time when the files are missing and cannot be had, in
one sentence that says where to put them; with a mirror that answers, it is accepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gradscope.engine import mnist
from tests.server.conftest import QuietHandler, free_port, http_service, in_process


@pytest.fixture
def mirror() -> Iterator[str]:
    """A local HTTP server that answers every HEAD with 200 (a reachable mirror)."""

    class Answer(QuietHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.end_headers()

    with http_service(Answer) as url:
        yield url


def create_mnist(app) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    body = {"preset": "mnist-mlp", "config": {"steps": 2}}
    r = app.request("POST", "/api/runs", json=body)
    return r.status_code, r.text


def test_missing_mnist_with_downloads_off_is_refused_in_one_sentence(tmp_path: Path) -> None:
    empty = tmp_path / "no-mnist"
    with in_process(tmp_path / "data", empty, mnist_download=False) as app:
        status, text = create_mnist(app)
        assert status == 503, text
        detail = app.request("POST", "/api/runs", json={"preset": "mnist-mlp"}).json()["detail"]
        assert detail.startswith(f"MNIST is not in {empty}: put the four files there")
        assert all(name in detail for name in mnist.FILES) and "GRADSCOPE_MNIST_DIR" in detail
        assert "GRADSCOPE_MNIST_DOWNLOAD=false" in detail and "\n" not in detail
        assert app.request("GET", "/api/runs").json()["runs"] == []  # nothing was created


def test_missing_mnist_is_refused_offline_and_accepted_when_a_mirror_answers(
    tmp_path: Path, mirror: str
) -> None:
    empty = tmp_path / "no-mnist"
    closed = f"http://127.0.0.1:{free_port()}/"
    with in_process(tmp_path / "data", empty, mnist_mirrors=(closed,)) as app:
        status, text = create_mnist(app)
        assert status == 503 and "no download mirror answers" in text, text
    mirrors = (closed, mirror)
    with in_process(tmp_path / "data2", empty, max_concurrent=1, mnist_mirrors=mirrors) as app:
        status, text = create_mnist(app)
        assert status == 201, text  # its worker downloads the files, then trains
        assert app.request("POST", "/api/runs", json={"preset": "moons"}).status_code == 201
