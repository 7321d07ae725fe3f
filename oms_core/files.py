"""Uploaded images (signatures, delivery and complaint photos), stored by content.

A file's name is the SHA-256 of its bytes, so the same photo sent twice (a retry from a
phone that lost the answer) is stored once, and no name a client sends ever reaches the
file system: ``../../etc/passwd`` as a filename changes nothing. Before anything is
written an upload must be a PNG, JPEG or WebP by its magic bytes, within the size and
pixel caps, and decode with Pillow (so a script renamed ``.png``, a truncated image or a
decompression bomb is refused with a code saying which). The bytes are written to a
temporary file, flushed to disk and renamed into place, then the metadata row is
inserted: a crash leaves at most an unreferenced file, never a row without its bytes.

The store is a directory (``file_dir``). In production point it at durable storage; an
S3-compatible object store (MinIO, Ceph RGW, AWS S3) fits the same content-addressed
layout — key ``<ab>/<cd>/<sha256>`` — and can be mounted there (see README, "ePOD files").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image, UnidentifiedImageError

from oms_core.errors import OmsError

__all__ = [
    "MEDIA_TYPES",
    "SHA256_RE",
    "FileStore",
    "Stored",
    "UploadRefused",
    "inspect",
    "register",
    "sniff",
]

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# media type: (magic test, Pillow format name)
MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: nothing may follow it


class UploadRefused(OmsError):
    """An upload that is not an acceptable image; nothing was stored."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True, slots=True)
class Stored:
    """An accepted file: its content address and what it is."""

    sha256: str
    media_type: str
    size_bytes: int
    width: int
    height: int


def sniff(data: bytes) -> str | None:
    """The media type by magic bytes (PNG, JPEG, WebP), or None."""
    if data.startswith(_PNG_MAGIC):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def inspect(data: bytes, *, max_bytes: int, max_pixels: int) -> Stored:
    """Check ``data`` is an acceptable image and describe it, or raise ``UploadRefused``."""
    if not data:
        raise UploadRefused("empty_file", "the file is empty: choose a photo or sign again")
    if len(data) > max_bytes:
        raise UploadRefused(
            "file_too_large",
            f"the file is {len(data)} bytes, more than {max_bytes}: send a smaller photo",
            413,
        )
    media = sniff(data)
    if media is None:
        raise UploadRefused(
            "unsupported_type",
            "only PNG, JPEG or WebP images are accepted (the file's content is none of them)",
            415,
        )
    if media == "image/png" and not data.endswith(_PNG_END):
        raise UploadRefused("corrupt_image", "the PNG does not end where a PNG ends")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its pixel limit and twice it: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[MEDIA_TYPES[media]])
        with img:
            width, height = img.size
            if width * height > max_pixels:
                raise UploadRefused(
                    "too_many_pixels",
                    f"the image is {width}×{height} pixels, more than {max_pixels}: resize it",
                    413,
                )
            img.load()  # decode it all: a truncated or corrupt image fails here
    except UploadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRefused(
            "too_many_pixels", f"the image is too large to open ({exc})", 413
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UploadRefused("corrupt_image", f"the image cannot be read ({exc})") from exc
    return Stored(hashlib.sha256(data).hexdigest(), media, len(data), width, height)


class FileStore:
    """Content-addressed files under ``root``: ``<root>/<ab>/<cd>/<sha256>``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the file with this digest lives (``ValueError`` for anything else)."""
        if not SHA256_RE.fullmatch(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, sha256: str) -> None:
        """Write ``data`` under ``sha256`` durably (temporary file, fsync, rename)."""
        final = self.path(sha256)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read(self, sha256: str) -> bytes:
        """The file's bytes (``FileNotFoundError`` when it is not stored)."""
        return self.path(sha256).read_bytes()


def register(conn: psycopg.Connection[Any], stored: Stored, uploaded_by: str) -> None:
    """Record the file's metadata (once: a second upload of the same bytes is a no-op)."""
    conn.execute(
        "INSERT INTO files (sha256, media_type, size_bytes, width, height, uploaded_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
        (
            stored.sha256,
            stored.media_type,
            stored.size_bytes,
            stored.width,
            stored.height,
            uploaded_by,
        ),
    )
