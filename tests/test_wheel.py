"""The built wheel, installed into a fresh venv and started from a temp folder, serves it all.

Offline and quick: the wheel is built without build isolation from a copy of the sources (the
checkout gets no build/ or egg-info), and the fresh venv borrows its dependencies from the
project's venv through a .pth line, while `pip check` proves the wheel's own requirements hold.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import numpy as np
import pytest

from tests.server.conftest import ROOT, free_port

SOURCES = ("pyproject.toml", "README.md", "engine", "server", "static", "templates")
PAGES = ["/", "/runs/{run_id}", "/draw", "/docs"]
# ES module imports: `import x from "..."`, `import "..."`, `export .. from "..."`, `import("..")`
MODULE_IMPORT = re.compile(
    r"""(?:\bimport|\bexport)\s*(?:[\w*{}\s,$]+?\s*from\s*)?["']([^"']+)["']"""
    r"""|\bimport\(\s*["']([^"']+)["']\s*\)"""
)
ASSET = re.compile(r"(/|\./)[\w./-]+\.(js|css|png|svg|ico)")
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")


@dataclass
class Installed:
    """A fresh venv holding the wheel."""

    wheel: Path
    venv: Path
    src: Path  # the sources it was built from

    def bin(self, name: str) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin") / name

    def python(self, code: str) -> str:
        res = subprocess.run(
            [str(self.bin("python")), "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.venv.parent,
            env=clean_env(),
        )
        assert res.returncode == 0, res.stderr
        return res.stdout


def clean_env() -> dict[str, str]:
    """The environment without anything that would point Python or Gradscope at the checkout."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GRADSCOPE_")}


def pip(*args: str) -> None:
    """The project's pip, acting on another environment with --python."""
    res = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel once, then install it, and nothing else, into a fresh venv."""
    vendor = ROOT / "static" / "vendor"
    assert (vendor / "swagger-ui-bundle.js").is_file(), "run `make vendor` first"
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    dist = base / "dist"
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(src))
    (wheel,) = dist.glob("gradscope-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    fresh = Installed(wheel, env_dir, src)
    python = str(fresh.bin("python"))
    pip("--python", python, "install", "--no-index", "--no-deps", "-q", str(wheel))
    site = Path(fresh.python("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # Appended after the venv's own site-packages, so the wheel's gradscope comes first.
    (site / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip("--python", python, "check")
    return fresh


@pytest.fixture(scope="module")
def served(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`gradscope serve` from the fresh venv, started in an empty temp folder."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    port = free_port()
    log = cwd / "server.log"
    command = [str(installed.bin("gradscope")), "serve", "--port", str(port)]
    command += ["--data-dir", str(cwd / "data")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=clean_env(), stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the server exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/api/presets", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class AssetLinks(HTMLParser):
    """The local assets a page loads: stylesheets, icons, scripts, images, and the panel modules
    its script imports from data- attributes (any attribute naming a local .js file)."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, bool]] = []  # (url, is an ES module)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        module = tag == "script" and dict(attrs).get("type") == "module"
        for name, value in attrs:
            if not value:
                continue
            if (tag, name) in (("link", "href"), ("script", "src"), ("img", "src")):
                self.assets.append((value, module))
            elif name.startswith("data-") and ASSET.fullmatch(value):
                self.assets.append((value, value.endswith(".js")))


def local(base: str, ref: str) -> str | None:
    """The path a reference loads from this server; None for inline data; the whole URL (which
    fails the crawl: it would not load offline) for another host."""
    url = urljoin(base, ref)
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob"):
        return None
    return parts.path if parts.netloc == urlsplit(base).netloc else url


def crawl(url: str, page: str) -> dict[str, int]:
    """GET a page and everything it loads, following ES module imports and CSS url()s."""
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.get(page)
        statuses[page] = r.status_code
        parser = AssetLinks()
        parser.feed(r.text)
        todo = [(local(f"{url}{page}", ref), module) for ref, module in parser.assets]
        while todo:
            path, module = todo.pop()
            if path is None or path in statuses:
                continue
            if "://" in path:
                statuses[path] = 0  # another host: not served here, not there offline
                continue
            r = client.get(path)
            statuses[path] = r.status_code
            refs: list[tuple[str, bool]] = []
            if module:
                refs = [(a or b, True) for a, b in MODULE_IMPORT.findall(r.text)]
            elif path.endswith(".css"):
                refs = [(ref, False) for ref in CSS_URL.findall(r.text)]
            todo += [(local(f"{url}{path}", ref), is_module) for ref, is_module in refs]
    return statuses


def test_the_wheel_claims_only_the_gradscope_name(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"gradscope"}
    out = installed.python(
        "import importlib.metadata as m, importlib.util as u, json, gradscope.server as s\n"
        "d = m.distribution('gradscope')\n"
        "print(json.dumps({'top': d.read_text('top_level.txt').split(), 'file': s.__file__,\n"
        "    'others': [n for n in ('engine', 'server', 'static', 'templates')\n"
        "               if u.find_spec(n) is not None]}))"
    )
    found = json.loads(out)
    assert found["top"] == ["gradscope"] and found["others"] == []
    assert Path(found["file"]).is_relative_to(installed.venv)  # the wheel's, not the checkout's


def test_the_wheel_holds_every_module_page_asset_and_the_model(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {
        f"gradscope/{path.relative_to(installed.src).as_posix()}"
        for folder in ("engine", "server", "templates", "static")
        for path in (installed.src / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
    }
    assert expected - names == set()
    assert "gradscope/server/digits/bundled/mnist.npz" in names


@pytest.mark.parametrize("page", PAGES)
def test_every_page_and_everything_it_loads_is_served(served: str, page: str) -> None:
    if "{run_id}" in page:
        r = httpx.post(f"{served}/api/runs", json={"preset": "napkin-average"}, timeout=30)
        assert r.status_code == 201, r.text
        page = page.format(run_id=r.json()["id"])
    statuses = crawl(served, page)
    assert len(statuses) > 2, statuses  # the page, its styles and at least one script
    assert {path: code for path, code in statuses.items() if code != 200} == {}
    if page == "/docs":
        assert any(p.endswith("swagger-ui-bundle.js") for p in statuses)
        assert httpx.get(f"{served}/openapi.json", timeout=30).status_code == 200
    if page.startswith("/runs/"):
        assert {"/static/vendor/uPlot.esm.js", "/static/vendor/viz.js"} <= set(statuses)


def test_draw_reads_a_digit_with_the_bundled_model(served: str) -> None:
    one = np.zeros((28, 28))
    one[4:24, 13:15] = 1.0  # a vertical stroke: a 1
    r = httpx.post(f"{served}/api/predict", json={"pixels": one.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["digit"] == 1 and abs(sum(body["probabilities"]) - 1) < 1e-6
