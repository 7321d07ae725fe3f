"""Reading uploads: a ``multipart/form-data`` body (the driver page's photos and
signature, the tracking page's complaint form) or a raw image body.

The body is streamed and counted, so a client cannot make the server hold more than the
cap (plus one chunk) whatever its Content-Length says; the number of parts and the size
of each text field are capped too. File names are never used (files are stored by
content), so a name like ``../../x`` is simply ignored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiohttp import BodyPartReader, web

from oms_core import files
from oms_core.api.context import CTX, run
from oms_core.api.errors import ApiError

__all__ = ["Form", "accept_image", "read_form"]

MAX_PARTS = 12
MAX_TEXT_BYTES = 8192
_CHUNK = 65536
_IMAGE_TYPES = frozenset(files.MEDIA_TYPES)


@dataclass(frozen=True, slots=True)
class Form:
    """The fields of a form: texts by name, and files (bytes) by name."""

    texts: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


async def _read_part(part: BodyPartReader, cap: int, what: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > cap:
            raise ApiError(
                413, "file_too_large" if what == "file" else "field_too_large",
                f"the {what} {part.name!r} is larger than {cap} bytes: send less",
            )  # fmt: skip
    return bytes(data)


async def read_form(request: web.Request, *, file_fields: frozenset[str], max_bytes: int) -> Form:
    """The form's text fields and the files named in ``file_fields`` (each at most
    ``max_bytes``); a raw image body counts as the one file field. Errors are
    ``ApiError`` with a code saying what to fix."""
    if request.content_type in _IMAGE_TYPES and len(file_fields) == 1:
        data = bytearray()
        async for chunk in request.content.iter_chunked(_CHUNK):
            data += chunk
            if len(data) > max_bytes:
                raise ApiError(413, "file_too_large", f"the file is larger than {max_bytes} bytes")
        return Form(files={next(iter(file_fields)): bytes(data)})
    if request.content_type != "multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type",
            "send multipart/form-data (a form with a file field) or the image itself",
        )  # fmt: skip
    try:
        reader = await request.multipart()
        form = Form()
        for _ in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                return form
            if not isinstance(part, BodyPartReader) or not part.name:
                raise ApiError(400, "bad_form", "every form part needs a name")
            if part.name in file_fields:
                form.files[part.name] = await _read_part(part, max_bytes, "file")
            elif part.filename is not None:
                expected = ", ".join(sorted(file_fields)) or "none"
                raise ApiError(
                    422, "unknown_field",
                    f"the form sends a file as {part.name!r}; file fields here: {expected}",
                )  # fmt: skip
            else:
                raw = await _read_part(part, MAX_TEXT_BYTES, "field")
                form.texts[part.name] = raw.decode("utf-8", errors="strict")
        raise ApiError(413, "too_many_parts", f"a form may have at most {MAX_PARTS} parts")
    except (ValueError, UnicodeDecodeError, AssertionError) as exc:
        raise ApiError(400, "bad_form", f"the form cannot be read ({exc})") from exc


async def accept_image(request: web.Request, data: bytes, uploaded_by: str) -> files.Stored:
    """Check, store and register one image; ``UploadRefused`` leaves nothing behind."""
    ex = request.app[CTX].execution
    stored = await asyncio.to_thread(
        files.inspect, data, max_bytes=ex.upload_max_bytes, max_pixels=ex.upload_max_pixels
    )
    await asyncio.to_thread(ex.files.put, data, stored.sha256)

    def register(conn: psycopg.Connection[Any]) -> None:
        files.register(conn, stored, uploaded_by)

    await run(request, register)
    return stored
