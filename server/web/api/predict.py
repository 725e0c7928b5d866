"""/api/predict: a drawn digit (an image or 28x28 pixels) in, the model's ten probabilities out.

The body is read here, not by FastAPI, because one route takes four content types:
application/json (`PixelsRequest`), multipart/form-data (a `file` field), and a raw
image/png or image/jpeg body. OpenAPI documents all four (`REQUEST_BODY`). Multipart is
parsed by server/web/multipart.py (the standard library's email parser). The work itself
(decoding, preprocessing, the forward pass) runs in the thread pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gradscope.engine.inference import softmax_rows
from gradscope.server.digits import preprocess as digits
from gradscope.server.digits.models import ModelCache, activation_maps
from gradscope.server.errors import Unsupported
from gradscope.server.settings import Settings
from gradscope.server.store import Store
from gradscope.server.web.api.deps import SettingsDep, StoreDep
from gradscope.server.web.api.models import Problem
from gradscope.server.web.multipart import MultipartError, form_fields

router = APIRouter(prefix="/api", tags=["predict"])
MULTIPART_SLACK = 16 * 1024  # boundaries and part headers around a 1 MB file
IMAGE_TYPES = set(digits.FORMATS.values())
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (404, 409, 413, 415, 422, 429, 503)
}
MODEL_QUERY = Query(
    max_length=64,
    description="'bundled' (the default, an MLP), 'bundled-cnn' (a CNN) or the id of a "
    "finished MNIST run",
)


# The shapes and range in the schema too, so clients (and fuzzers) know what is accepted;
# a value that breaks them is named by digits.pixels_array in the 422.
Pixel = Annotated[float, Field(ge=0, le=1)]
Flat = Annotated[list[Pixel], Field(min_length=digits.SIDE**2, max_length=digits.SIDE**2)]
Row = Annotated[list[Pixel], Field(min_length=digits.SIDE, max_length=digits.SIDE)]
Rows = Annotated[list[Row], Field(min_length=digits.SIDE, max_length=digits.SIDE)]


class PixelsRequest(BaseModel):
    """A digit as pixel values: 784 numbers or 28 rows of 28, each in [0, 1]."""

    model_config = ConfigDict(extra="forbid")
    pixels: Flat | Rows = Field(
        description="784 values (row-major) or 28 rows of 28; 0 is background, 1 full ink "
        "(either polarity: a light background is inverted)",
    )
    model: str | None = Field(
        None,
        max_length=64,
        description="'bundled' (default), 'bundled-cnn' or a finished MNIST run's id",
    )
    preprocess: bool = Field(
        True,
        description="frame the digit like MNIST (crop, scale to 20 px, centre by mass); "
        "false: the pixels already are an MNIST digit (white on black, framed)",
    )


class Typical(BaseModel):
    """Whether the drawing looks like a digit at all (server/digits/typical.py)."""

    score: float = Field(
        description="distance of the framed drawing from the space of MNIST digits"
    )
    threshold: float = Field(description="the score of the MNIST test set's 99th percentile")
    unlike_digits: bool = Field(
        description="score > threshold: unlike any MNIST digit, so the prediction means little"
    )


class LayerMap(BaseModel):
    """One layer's activations for the drawing (`activations=1`)."""

    name: str = Field(description="e.g. 'conv 1 (relu)', 'pool 1', 'hidden 1 (relu)', 'logits'")
    shape: list[int] = Field(
        description="the layer's output shape for one digit: [units] for a dense layer, "
        "[channels, height, width] for a conv or pool layer (channel by channel, row-major)"
    )
    shown: int = Field(
        description="how many values follow (fewer than the shape holds past "
        "GRADSCOPE_MAX_ACTIVATION_VALUES in all)"
    )
    values: list[float] = Field(description="the first `shown` values, row-major")


class Prediction(BaseModel):
    """What the model thinks the digit is, and what it saw."""

    digit: int = Field(ge=0, le=9, description="the most probable digit")
    probabilities: list[float] = Field(description="P(digit) for 0..9 (softmax), summing to 1")
    model: str = Field(description="the model that answered")
    input: list[list[float]] = Field(
        description="the preprocessed 28x28 image the model saw, 0..1, white on black "
        "(before the model's own mean/std normalisation)"
    )
    logits: list[float] = Field(description="the model's ten outputs before the softmax")
    typical: Typical
    layers: list[LayerMap] | None = Field(
        None, description="with `activations=1`: every layer's activations, the logits last"
    )


class ModelInfo(BaseModel):
    """A model the picker offers."""

    id: str = Field(description="'bundled', 'bundled-cnn' or a run id: pass it as `model`")
    name: str
    kind: str = Field(description="bundled (ships with Gradscope) or run (a finished MNIST run)")
    net: str = Field("mlp", description="mlp (dense layers) or cnn (conv layers first)")
    preset: str | None = None
    step: int | None = None
    sizes: list[int] | None = Field(
        None, description="layer widths, 784 ... 10 (a conv or pool layer's: its channels)"
    )
    test_acc: float | None = Field(None, description="MNIST test accuracy, when known")


class ModelList(BaseModel):
    models: list[ModelInfo]


_IMAGE_SCHEMA = {"type": "string", "format": "binary"}
REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": PixelsRequest.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {**_IMAGE_SCHEMA, "description": "a PNG or JPEG, at most 1 MB"},
                    "model": {"type": "string", "description": "as the `model` query parameter"},
                },
                "required": ["file"],
            }
        },
        "image/png": {"schema": _IMAGE_SCHEMA},
        "image/jpeg": {"schema": _IMAGE_SCHEMA},
    },
}


class Predictions:
    """At most `limit` predictions at once (each may decode a large image); up to 16 times
    as many wait their turn (holding at most 1 MB each), and more get a 429 with Retry-After."""

    def __init__(self, limit: int) -> None:
        self.limit, self.slots, self.waiting = limit, asyncio.Semaphore(limit), 0

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if self.waiting >= 16 * self.limit:
            raise HTTPException(
                429,
                f"{self.waiting} predictions are already waiting for {self.limit} slots "
                "(GRADSCOPE_MAX_PREDICTIONS); try again in a second",
                headers={"Retry-After": "1"},
            )
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self.slots.release()


def _turns(request: Request, settings: Settings) -> Predictions:
    state = request.app.state
    if getattr(state, "predictions", None) is None:
        state.predictions = Predictions(settings.max_predictions)
    return state.predictions


def _cache(request: Request, settings: Settings) -> ModelCache:
    state = request.app.state
    if getattr(state, "digit_models", None) is None:
        state.digit_models = ModelCache(max_parameters=settings.max_parameters)
    return state.digit_models


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (DigitTooLarge) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int) -> digits.DigitTooLarge:
    return digits.DigitTooLarge(
        f"the upload is over {digits.MAX_BYTES:,} bytes ({size:,}); send a smaller image"
    )


def _multipart(content_type: str, body: bytes) -> tuple[bytes, str | None]:
    """(the `file` field's bytes, the `model` field if any) of a multipart/form-data body."""
    try:
        fields = form_fields(content_type, body)
    except MultipartError as e:
        raise digits.InvalidDigit(str(e)) from None
    if "file" not in fields:
        raise digits.InvalidDigit("the multipart form has no `file` field with the image")
    model = fields["model"].data.decode("utf-8", "replace").strip() if "model" in fields else ""
    return fields["file"].data, model or None


def _pixels_request(body: bytes) -> PixelsRequest:
    """The JSON body as a PixelsRequest (NaN and Infinity reach the pixel check, by name)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise digits.InvalidDigit(f"the body is not valid JSON: {e}") from None
    try:
        return PixelsRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if where.startswith("pixels"):
            where = "pixels"  # the union's branches make the location noisy
            if isinstance(data, dict) and isinstance(data.get("pixels"), list):
                digits.pixels_array(data["pixels"])  # names the offending value when it can
        raise digits.InvalidDigit(f"{where}: {err['msg']}") from None


def _predict(
    cache: ModelCache,
    store: Store,
    model_id: str | None,
    image: bytes | None,
    req: Any,
    settings: Settings,
    activations: bool,
) -> tuple[Prediction, float, float]:
    """(the prediction, preprocessing ms, forward ms); a DigitError or ModelError otherwise."""
    model = cache.get(store, model_id)
    t0 = time.perf_counter()
    if image is not None:
        digit = digits.preprocess(digits.decode_image(image, settings.max_decode_mb * 2**20))
    else:
        array = digits.pixels_array(req.pixels)
        if req.preprocess:
            digit = digits.preprocess(array)
        elif float(array.max()) < digits.BLANK_PEAK:
            raise digits.InvalidDigit("nothing drawn: every pixel is background")
        else:
            digit = array
    t1 = time.perf_counter()
    inside = model.inside(digit)
    logits = inside[-1][1]
    probs = softmax_rows(logits[None])[0]
    t2 = time.perf_counter()
    prediction = Prediction(
        digit=int(probs.argmax()),
        probabilities=probs.tolist(),
        model=model.id,
        input=np.round(digit.astype(np.float64), 3).tolist(),
        logits=logits.astype(np.float64).tolist(),
        typical=Typical(**cache.digit_space().judge(digit)),
        layers=activation_maps(inside, settings.max_activation_values) if activations else None,
    )
    return prediction, (t1 - t0) * 1000, (t2 - t1) * 1000


@router.post(
    "/predict",
    response_model=Prediction,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def predict(
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    model: Annotated[str | None, MODEL_QUERY] = None,
    activations: Annotated[
        bool,
        Query(
            description="also return every layer's activations for the drawing (`layers`), "
            "at most GRADSCOPE_MAX_ACTIVATION_VALUES values in all"
        ),
    ] = False,
) -> Prediction:
    """Classify a drawn digit: a PNG/JPEG (multipart `file` or raw body) or JSON pixels.

    The image is framed like MNIST (see server/digits.py) before the model sees it; the
    answer carries that 28x28 input. Errors: 422 nothing drawn, not an image, bad pixels;
    413 over 1 MB or too many pixels; 415 another content type; 404 unknown model; 409 a
    run that is not a finished MNIST run. The Server-Timing header gives the preprocessing
    and forward-pass times.
    """
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    image: bytes | None = None
    req: PixelsRequest | None = None
    async with _turns(request, settings).turn():
        # Parsing runs in the thread pool too: a 1 MB body of empty parts took the email
        # parser 19 s, and on the event loop every other request waited for it.
        if kind == "multipart/form-data":
            body = await _body(request, digits.MAX_BYTES + MULTIPART_SLACK)
            image, field_model = await run_in_threadpool(_multipart, content_type, body)
            if len(image) > digits.MAX_BYTES:
                raise _too_large(len(image))
            model = field_model or model
        elif kind in IMAGE_TYPES:
            image = await _body(request, digits.MAX_BYTES)
        elif kind == "application/json" or kind.endswith("+json"):
            body = await _body(request, digits.MAX_BYTES)
            req = await run_in_threadpool(_pixels_request, body)
            model = req.model or model
        else:
            raise Unsupported(
                f"unsupported content type {kind or '(none)'!r}: send image/png, image/jpeg, "
                'multipart/form-data with a `file` field, or application/json {"pixels": ...}',
            )
        result, pre_ms, fwd_ms = await run_in_threadpool(
            _predict, _cache(request, settings), store, model, image, req, settings, activations
        )
    response.headers["Server-Timing"] = f"preprocess;dur={pre_ms:.3f}, forward;dur={fwd_ms:.3f}"
    return result


@router.get("/models", response_model=ModelList, responses={503: {"model": Problem}})
async def list_models(request: Request, store: StoreDep, settings: SettingsDep) -> ModelList:
    """The models /draw can use: the bundled MLP and CNN, then each finished MNIST run."""
    models = await run_in_threadpool(_cache(request, settings).listing, store)
    return ModelList(models=[ModelInfo(**m) for m in models])
