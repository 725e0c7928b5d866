"""Fuzzing the server's parsers with hypothesis: run configs, drawn images and pixels, and
websocket messages (the parser, then a live server's socket). Each input gives a result or
our own error type naming the problem, never another exception."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gradscope.server.cli.commands import parse_overrides
from gradscope.server.digits import preprocess as digits
from gradscope.server.runs.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    resolve_config,
    validate_config,
)
from gradscope.server.web.api.ws import _parse_since
from tests.server.conftest import Server, live_server

FAST = settings(max_examples=200, deadline=None)
SQLITE_MAX_INT = 2**63 - 1  # seqs and steps are SQLite INTEGERs

# -- run configs -------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["mnist", "moons", "tiny", "relu", "adam", "scalar", "mse", "sum"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
FIELDS = sorted(RunConfig.model_fields)


def _names(model: Any) -> list[str]:
    return sorted(model.model_fields)


NESTED = {
    "dataset": _names(RunConfig.model_fields["dataset"].annotation),
    "model": _names(type(PRESETS["moons"].config.model)),
    "optimizer": _names(type(PRESETS["moons"].config.optimizer)),
    "record": _names(type(PRESETS["moons"].config.record)),
}


@st.composite
def mutated_presets(draw: st.DrawFn) -> dict[str, Any]:
    """A preset's full config with a few fields set to any JSON value, or removed."""
    config = PRESETS[draw(st.sampled_from(sorted(PRESETS)))].config.model_dump(mode="json")
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from([None, *NESTED]))
        node = config if section is None else config.get(section)
        if not isinstance(node, dict):
            continue
        key = draw(st.sampled_from(FIELDS if section is None else NESTED[section]) | st.text())
        if draw(st.booleans()):
            node.pop(key, None)
        else:
            node[key] = draw(JSON)
    return config


def _names_a_field(e: ConfigError, data: Any) -> None:
    """The error's dotted field starts at a config field (or a key the caller sent)."""
    assert e.field and e.message, e
    first = re.match(r'"(?:[^"\\]|\\.)*"|[^.]+', e.field)
    assert first is not None, e.field
    head = json.loads(first[0]) if first[0].startswith('"') else first[0]
    known = {*FIELDS, "config", "preset", "overrides"}
    assert head in known or (isinstance(data, dict) and head in data), (e.field, data)


@FAST
@given(data=JSON | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), JSON))
def test_fuzz_any_json_is_a_config_or_a_config_error(data: Any) -> None:
    try:
        config = validate_config(data)
    except ConfigError as e:
        _names_a_field(e, data)
    else:
        assert validate_config(config.model_dump(mode="json")) == config


@FAST
@given(data=mutated_presets())
def test_fuzz_mutated_presets_are_configs_or_name_the_field(data: dict[str, Any]) -> None:
    try:
        config = validate_config(data)
    except ConfigError as e:
        _names_a_field(e, data)
    else:  # the sizes a valid config implies are plain arithmetic
        assert config.num_parameters() >= 1 and config.total_steps() >= 1
        assert len(config.layer_sizes()) == len(config.model.hidden) + 2
        assert validate_config(config.model_dump(mode="json")) == config


@FAST
@given(
    preset=st.none() | st.sampled_from(sorted(PRESETS)) | JSON,
    overrides=st.none() | JSON,
    limit=st.integers(1, 10**7),
)
def test_fuzz_resolve_config_keeps_to_the_limits(preset: Any, overrides: Any, limit: int) -> None:
    try:
        config = resolve_config(preset, overrides, max_parameters=limit, max_steps=limit)
    except ConfigError as e:
        _names_a_field(e, overrides)
    else:
        assert config.num_parameters() <= limit and config.total_steps() <= limit


@FAST
@given(pairs=st.lists(st.text(max_size=20) | st.from_regex(r"[a-z_.]{1,12}=.{0,12}"), max_size=4))
def test_fuzz_cli_overrides_parse_or_name_the_key(pairs: list[str]) -> None:
    try:
        overrides = parse_overrides(pairs)
    except ConfigError as e:
        assert e.field and e.message
    else:
        assert isinstance(overrides, dict)


# -- drawn digits ----------------------------------------------------------------------------


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt)
    return buf.getvalue()


DIGIT = np.zeros((40, 30), np.uint8)
DIGIT[5:35, 12:18] = 255
VALID_IMAGES = [
    _encode(DIGIT, "PNG"),
    _encode(DIGIT, "JPEG"),
    _encode(DIGIT[:, :, None].repeat(3, 2), "PNG"),
]


@st.composite
def images(draw: st.DrawFn) -> bytes:
    """Random bytes, or a real PNG/JPEG with flipped bytes, cut short, or with bytes added."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(VALID_IMAGES)))
    for i, x in draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4)):
        data[i % len(data)] ^= x
    cut = draw(st.integers(0, len(data)))
    return bytes(data[: len(data) - cut]) if draw(st.booleans()) else bytes(data)


def _is_a_digit(out: np.ndarray) -> None:
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@settings(max_examples=300, deadline=None)
@given(data=images())
def test_fuzz_image_bytes_are_a_digit_or_a_digit_error(data: bytes) -> None:
    try:
        digit = digits.preprocess(digits.decode_image(data))
    except digits.DigitError as e:
        assert isinstance(e, digits.InvalidDigit | digits.DigitTooLarge) and e.message
    else:
        _is_a_digit(digit)


@FAST
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    values=st.sampled_from(["noise", "dot", "line", "flat", "tiny"]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_small_images_are_a_digit_or_a_digit_error(
    shape: tuple[int, int], values: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    gray = np.full(shape, rng.random(), np.float32)
    if values == "noise":
        gray = rng.random(shape, dtype=np.float32)
    elif values == "dot":
        gray[rng.integers(shape[0]), rng.integers(shape[1])] = 1 - gray.flat[0]
    elif values == "line":
        gray[:, rng.integers(shape[1])] = 1 - gray.flat[0]
    elif values == "tiny":
        gray += rng.random(shape, dtype=np.float32) * 1e-6
    try:
        digit = digits.preprocess(gray)
    except digits.DigitError as e:
        assert isinstance(e, digits.InvalidDigit) and e.message
    else:
        _is_a_digit(digit)


@settings(max_examples=100, deadline=None)
@given(
    pixels=JSON
    | st.lists(st.floats(width=32) | st.integers(-2, 2), min_size=784, max_size=784)
    | st.lists(st.lists(st.floats(0, 1), min_size=27, max_size=29), min_size=27, max_size=29)
)
def test_fuzz_pixels_are_an_image_or_a_digit_error(pixels: Any) -> None:
    try:
        array = digits.pixels_array(pixels)
    except digits.DigitError as e:
        assert isinstance(e, digits.InvalidDigit) and e.message.startswith("pixels")
    else:
        assert array.shape == (28, 28) and array.min() >= 0 and array.max() <= 1


# -- websocket messages ----------------------------------------------------------------------


def _valid_since(text: str) -> int | None:
    """The seq of a {"since": n} message, by a reading independent of the server's."""
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    if isinstance(msg, dict) and list(msg) == ["since"]:
        v = msg["since"]
        if type(v) is int and 0 <= v <= SQLITE_MAX_INT:
            return v
    return None


TEXTS = (
    st.text(max_size=60)
    | JSON.map(json.dumps)
    | st.builds(lambda v: json.dumps({"since": v}), JSON)
    | st.builds(lambda v: f'{{"since": {v}}}', st.sampled_from(["1e3", "NaN", "-0", "01", "1.0"]))
    | st.integers(0, 2**70).map(lambda n: json.dumps({"since": n}))
    | st.sampled_from([SQLITE_MAX_INT, SQLITE_MAX_INT + 1]).map(lambda n: json.dumps({"since": n}))
)


@settings(max_examples=500, deadline=None)
@given(text=st.none() | TEXTS)
def test_fuzz_parse_since_is_a_seq_or_a_value_error(text: str | None) -> None:
    expected = None if text is None else _valid_since(text)
    try:
        since = _parse_since(text)
    except ValueError as e:
        assert str(e) and expected is None
    else:
        assert since == expected and since >= 0


@pytest.fixture(scope="module")
def ws_server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    with live_server(tmp_path_factory.mktemp("ws-fuzz"), real_mnist) as s:
        yield s


@pytest.fixture(scope="module")
def finished_run(ws_server: Server) -> dict[str, Any]:
    run = ws_server.create("moons", steps=100)
    return ws_server.wait_for(run["id"], lambda r: r["state"] == "finished")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(message=TEXTS | st.binary(max_size=60))
def test_fuzz_live_websocket_closes_cleanly_on_garbage(
    ws_server: Server, finished_run: dict[str, Any], message: str | bytes
) -> None:
    """A message that is not {"since": n} closes the socket with 1008 and a reason; a valid
    one replays from there. The server keeps serving either way."""
    since = None if isinstance(message, bytes) else _valid_since(message)
    assume(since is None or since <= finished_run["last_seq"] + 5)
    url = f"{ws_server.ws_url}/ws/runs/{finished_run['id']}?since={finished_run['last_seq']}"
    with connect(url, open_timeout=30, max_queue=None, max_size=None) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["kind"] == "hello"
        ws.send(message)
        if since is None:
            deadline = time.monotonic() + 30  # the close comes, or DID NOT RAISE
            with pytest.raises(ConnectionClosed) as closed:
                while time.monotonic() < deadline:
                    ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert closed.value.rcvd.reason
        elif since < finished_run["last_seq"]:
            batch = json.loads(ws.recv(timeout=10))
            assert batch["kind"] == "events" and batch["events"][0]["seq"] == since + 1
    r = ws_server.request("GET", f"/api/runs/{finished_run['id']}")
    assert r.status_code == 200 and r.json()["last_seq"] == finished_run["last_seq"]


def test_seq_and_step_numbers_beyond_sqlite_integers_are_refused(
    ws_server: Server, finished_run: dict[str, Any]
) -> None:
    """2**63 and above cannot reach SQLite (the driver overflows): a 422 or a 1008 close
    naming the parameter, never a 500 or a dropped socket."""
    rid = finished_run["id"]
    for huge in (SQLITE_MAX_INT + 1, 2**70):
        for path, params in (
            (f"/api/runs/{rid}/metrics", {"since": huge}),
            (f"/api/runs/{rid}/snapshots/graph", {"at": huge}),
        ):
            r = ws_server.request("GET", path, params=params)
            assert r.status_code == 422, (path, r.status_code, r.text)
        with connect(f"{ws_server.ws_url}/ws/runs/{rid}", open_timeout=30, max_queue=None) as ws:
            ws.recv(timeout=10)  # hello
            ws.send(json.dumps({"since": huge}))
            deadline = time.monotonic() + 30  # the close comes, or DID NOT RAISE
            with pytest.raises(ConnectionClosed) as closed:
                while time.monotonic() < deadline:
                    ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        # In the URL, the handshake itself is refused (FastAPI's answer to a bad parameter).
        with pytest.raises(InvalidStatus):
            connect(
                f"{ws_server.ws_url}/ws/runs/{rid}?since={huge}", open_timeout=30, max_queue=None
            )
    for params in ({"since": SQLITE_MAX_INT}, {"at": SQLITE_MAX_INT}):
        path = "metrics" if "since" in params else "snapshots/graph"
        r = ws_server.request("GET", f"/api/runs/{rid}/{path}", params=params)
        assert r.status_code == 200, r.text
