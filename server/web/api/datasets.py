"""/api/datasets: your own 2-D data. Upload a CSV (`x1,x2,label` or `x1,x2,y`, as the raw body
or a multipart `file`), list the uploads, delete one no run uses. A run trains on one with
{"dataset": {"name": "csv", "id": ...}}. The checks and the files are server/datasets.py's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from gradscope.server import datasets
from gradscope.server.errors import Unsupported
from gradscope.server.web.api.deps import SettingsDep, StoreDep
from gradscope.server.web.api.models import Problem
from gradscope.server.web.multipart import MultipartError, form_fields

router = APIRouter(prefix="/api/datasets", tags=["datasets"])
MULTIPART_SLACK = 16 * 1024  # boundaries and part headers around the file
TEXT_TYPES = ("text/csv", "text/plain", "application/csv", "application/octet-stream")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (404, 409, 413, 415, 422)
}
_FILE = {"type": "string", "format": "binary"}
REQUEST_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {**_FILE, "description": "the CSV file"}},
                "required": ["file"],
            }
        },
    },
}


class Dataset(BaseModel):
    """An uploaded set, as its sidecar describes it."""

    id: str = Field(description="32 hex digits, made by the server")
    name: str = Field(description="the file's name (or the `name` query parameter)")
    kind: str = Field(description="label (classification) or y (regression)")
    rows: int = Field(description="data rows")
    classes: int | None = Field(description="classes (largest label + 1); null for y")
    bytes: int = Field(description="the file's size")
    created: float = Field(description="Unix time of the upload")


class DatasetList(BaseModel):
    datasets: list[Dataset]


async def _body(request: Request, limit: int, max_rows: int | None = None) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes or, for a raw CSV,
    `max_rows` data rows (the row is named: a huge file is refused on the row limit)."""
    declared = request.headers.get("content-length", "")
    chunks, size, lines = [], 0, 0
    async for chunk in request.stream():
        size += len(chunk)
        lines += chunk.count(b"\n")
        if max_rows is not None and lines > max_rows + 1:  # the header, then the rows
            raise datasets.DatasetTooLarge(
                f"row {max_rows + 2}: more than {max_rows:,} data rows (GRADSCOPE_MAX_DATASET_ROWS)"
            )
        if size > limit:
            raise _too_large(max(size, int(declared) if declared.isdigit() else 0))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int) -> datasets.DatasetTooLarge:
    return datasets.DatasetTooLarge(
        f"the upload is over the limit ({size:,} bytes): GRADSCOPE_MAX_DATASET_BYTES"
    )


def _multipart(content_type: str, body: bytes) -> tuple[bytes, str | None]:
    """(the `file` field's bytes, its file name) of a multipart/form-data body."""
    try:
        fields = form_fields(content_type, body)
    except MultipartError as e:
        raise datasets.BadDataset(str(e)) from None
    if "file" not in fields:
        raise datasets.BadDataset("the multipart form has no `file` field with the CSV")
    return fields["file"]


@router.post(
    "",
    status_code=201,
    response_model=Dataset,
    responses=ERRORS,
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def upload(
    request: Request,
    settings: SettingsDep,
    name: Annotated[str | None, Query(max_length=datasets.MAX_NAME)] = None,
) -> dict[str, Any]:
    """Upload a CSV with the header `x1,x2,label` (labels 0..9) or `x1,x2,y` (a regression).
    422 names the row (1 is the header) and column of the first bad cell: wrong columns, a
    non-number, NaN or infinity, text that is not UTF-8, an empty file; 413 over
    GRADSCOPE_MAX_DATASET_BYTES or GRADSCOPE_MAX_DATASET_ROWS; 409 past GRADSCOPE_MAX_DATASETS."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    limit = settings.max_dataset_bytes
    if kind == "multipart/form-data":
        body, filename = await run_in_threadpool(
            _multipart, content_type, await _body(request, limit + MULTIPART_SLACK)
        )
        if len(body) > limit:
            raise _too_large(len(body))
    elif kind in TEXT_TYPES or not kind:
        body, filename = await _body(request, limit, settings.max_dataset_rows), None
    else:
        raise Unsupported(
            f"unsupported content type {kind!r}: send text/csv or multipart/form-data (`file`)"
        )
    return await run_in_threadpool(
        datasets.add_dataset,
        settings.data_dir,
        name or filename or "upload",
        body,
        max_rows=settings.max_dataset_rows,
        max_count=settings.max_datasets,
    )


@router.get("", response_model=DatasetList)
def list_uploads(settings: SettingsDep) -> dict[str, Any]:
    """The uploaded sets, newest first."""
    return {"datasets": datasets.list_datasets(settings.data_dir)}


@router.delete("/{dataset_id}", status_code=204, responses=ERRORS)
def delete_upload(dataset_id: str, settings: SettingsDep, store: StoreDep) -> Response:
    """Delete an uploaded set: 409 while a run's config uses it (delete those runs first)."""
    users = datasets.runs_using(((r.id, r.config) for r in store.list_runs()), dataset_id)
    datasets.delete_dataset(settings.data_dir, dataset_id, users)
    return Response(status_code=204)
