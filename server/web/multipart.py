"""multipart/form-data bodies (/api/predict's image, /api/datasets' CSV), parsed with the
standard library's email parser: no extra dependency. Callers run it in the thread pool (a
1 MB body of empty parts takes the parser seconds) and turn MultipartError into their own
4xx."""

from __future__ import annotations

from email.errors import MessageError
from email.parser import BytesParser
from email.policy import HTTP
from typing import NamedTuple


class MultipartError(ValueError):
    """A body that cannot be read as multipart/form-data; the message says why."""


class FormField(NamedTuple):
    data: bytes
    filename: str | None


def form_fields(content_type: str, body: bytes) -> dict[str, FormField]:
    """The named fields of a multipart/form-data body (a repeated name: the last one)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    try:
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        if not message.is_multipart():
            raise MultipartError("a multipart body without parts (is the boundary right?)")
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                fields[name] = FormField(part.get_payload(decode=True) or b"", part.get_filename())
    except MultipartError:
        raise
    except (ValueError, TypeError, LookupError, MessageError) as e:
        raise MultipartError(f"the multipart body cannot be read: {e}") from None
    return fields
