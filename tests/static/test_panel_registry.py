"""The panel registry is the one list of panels: the run page renders it, run.js routes by it,
every module it names exists, and docs/panels.md describes every panel."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from gradscope.server import STATIC_DIR
from gradscope.server.web.pages import templates
from gradscope.server.web.panels import PANELS, Panel
from tests.server.conftest import ROOT

DOC = ROOT / "docs" / "panels.md"
PANELS_JS = STATIC_DIR / "js" / "panels"


class _Sections(HTMLParser):
    """The attributes of every `[data-panel]` section of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and "data-panel" in found:
            self.sections.append(found)


def _doc_row(name: str) -> str:
    """The row of docs/panels.md's table that describes panel `name`."""
    rows = [line for line in DOC.read_text().splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"docs/panels.md has {len(rows)} rows for the {name} panel"
    return rows[0]


def test_names_are_unique() -> None:
    names = [p.name for p in PANELS]
    assert len(set(names)) == len(names) == len(PANELS) > 0


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.name)
def test_every_panel_is_documented(panel: Panel) -> None:
    row = _doc_row(panel.name)
    assert f"`{panel.module}`" in row
    for event in panel.events:
        assert f"`{event}`" in row, f"docs/panels.md: the {panel.name} panel's {event} events"


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.name)
def test_every_module_exists_and_exports_its_class(panel: Panel) -> None:
    source = (PANELS_JS / panel.module).read_text()
    assert re.search(r"^export default class \w+", source, re.M), panel.module
    # The registry alone says which events a panel takes: no second list in the class.
    assert not re.search(r"^\s+types\s*=", source, re.M), panel.module


def test_the_doc_lists_no_panel_the_registry_lacks() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `\w+\.js` \|", DOC.read_text(), re.M)
    assert rows == [p.name for p in PANELS]


def test_the_run_page_renders_the_registry() -> None:
    run = SimpleNamespace(
        id="r1", name="run", preset="moons", state="running", step=0, total_steps=10,
        config={"engine": "tensor", "optimizer": {"lr": 0.01}},
    )  # fmt: skip
    html = templates.get_template("run.html").render(run=run, panels=PANELS, vendor=True)
    parser = _Sections()
    parser.feed(html)
    assert [s["data-panel"] for s in parser.sections] == [p.name for p in PANELS]
    for section, panel in zip(parser.sections, PANELS, strict=True):
        assert section["id"] == f"panel-{panel.name}"
        assert section["data-events"] == " ".join(panel.events)
        assert section["data-module"] == f"/static/js/panels/{panel.module}"
        assert "hidden" in section


def test_run_js_imports_no_panel_itself() -> None:
    source = (STATIC_DIR / "js" / "run.js").read_text()
    assert not re.search(r"""from\s+["']\./panels/""", source)
    assert "el.dataset.module" in source and "dataset.events" in source
