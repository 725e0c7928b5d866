"""The new-run form is rendered from RunConfig's schema: its options are the config's
Literals and its bounds the fields' constraints, never a second copy in the template."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import get_args

from gradscope.server.runs.config import (
    PRESETS,
    DatasetConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
)
from gradscope.server.web.pages import NEW_RUN_FIELDS, templates


class _Form(HTMLParser):
    """Every named control of the page: its attributes, and a select's options."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, str | None]] = {}
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self._option = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "select") and found.get("name"):
            self.controls[str(found["name"])] = {"tag": tag, **found}
        if tag == "select":
            self._select = found.get("name")
            self.options[str(self._select)] = []
        self._option = tag == "option"

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        self._option = False

    def handle_data(self, data: str) -> None:
        if self._option and self._select and self._select != "preset":
            self.options[self._select].append(data)


def _form() -> _Form:
    html = templates.get_template("index.html").render(
        presets=list(PRESETS.values()), featured=[], fields=NEW_RUN_FIELDS, vendor=True
    )
    form = _Form()
    form.feed(html)
    return form


def _literal(model: type, field: str) -> list[str]:
    return list(get_args(model.model_fields[field].annotation))


def test_the_selects_offer_the_configs_literals() -> None:
    options = _form().options
    assert options["dataset.name"] == _literal(DatasetConfig, "name")
    assert options["model.activation"] == _literal(ModelConfig, "activation")
    assert options["loss"] == _literal(RunConfig, "loss")
    assert options["optimizer.name"] == _literal(OptimizerConfig, "name")


def test_the_inputs_carry_the_schemas_bounds() -> None:
    controls = _form().controls
    assert set(controls) == {"preset", *(f["name"] for f in NEW_RUN_FIELDS)}
    assert (
        controls["optimizer.lr"]["type"] == "number" and controls["optimizer.lr"]["step"] == "any"
    )
    assert controls["optimizer.lr"]["min"] == "0" and controls["optimizer.lr"]["max"] == "10"
    for name in ("batch_size", "epochs", "steps"):
        assert controls[name]["type"] == "number" and controls[name]["min"] == "1", name
    assert controls["batch_size"]["placeholder"] == "full batch"
    hidden = controls["model.hidden"]
    assert hidden["tag"] == "input" and hidden["data-kind"] == "array" and "type" not in hidden
