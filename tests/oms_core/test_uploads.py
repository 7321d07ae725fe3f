"""ePOD image uploads as an attacker would send them: wrong types, huge and truncated
files, path tricks, scripts dressed as PNGs, decompression bombs and random bytes are all
refused with a clear code, and nothing is stored (no row, no file)."""

from __future__ import annotations

import asyncio
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from oms_core import files
from oms_core.api import Role
from tests.oms_core.test_driver_api import upload
from tests.oms_core.trip_world import TripWorld, serve_trip

pytestmark = pytest.mark.db
CAP = 64 * 1024


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files", upload_max_bytes=CAP)


def image(fmt: str = "PNG", size: tuple[int, int] = (30, 20), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 1 if mode == "1" else "blue").save(out, fmt)
    return out.getvalue()


def nothing_stored(tw: TripWorld) -> None:
    with psycopg.connect(tw.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM files").fetchone() == (0,)
    assert not tw.files.exists() or not any(p.is_file() for p in tw.files.rglob("*"))


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` × ``height`` with a tiny compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    rows = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "ctype", "status", "code"),
    [
        (b"#!/bin/sh\nrm -rf /\n", "image/png", 415, "unsupported_type"),
        (b"<script>alert(1)</script>", "image/png", 415, "unsupported_type"),
        (b"%PDF-1.7\n", "application/pdf", 415, "unsupported_type"),
        (b"", "image/png", 422, "empty_file"),
        (b"\x89PNG\r\n\x1a\n<?php system($_GET['c']); ?>", "image/png", 422, "corrupt_image"),
        (image()[:-40] + b"\x00" * 12 + b"IEND\xaeB`\x82", "image/png", 422, "corrupt_image"),
        (image() + b"<script>alert(1)</script>", "image/png", 422, "corrupt_image"),
        (image("JPEG")[:200], "image/jpeg", 422, "corrupt_image"),
        (_bomb_png(30000, 30000), "image/png", 413, "too_many_pixels"),
        (b"\xff\xd8\xff" + b"A" * (CAP + 1), "image/jpeg", 413, "file_too_large"),
    ],
    ids=["shell", "html", "pdf", "empty", "php-in-png", "corrupt-png", "png-then-script",
         "truncated-jpeg", "bomb", "huge"],
)  # fmt: skip
def test_a_hostile_upload_is_refused_and_nothing_is_stored(
    tw: TripWorld, data: bytes, ctype: str, status: int, code: str
) -> None:
    got, body = upload(tw, data, ctype=ctype)
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]  # says what to do
    nothing_stored(tw)


def test_path_tricks_in_names_change_nothing(tw: TripWorld) -> None:
    data = image()
    status, body = upload(tw, data, name="../../../../etc/cron.d/evil.png")
    assert status == 201
    sha = body["sha256"]
    stored = [p for p in tw.files.rglob("*") if p.is_file()]
    assert stored == [tw.files / sha[:2] / sha[2:4] / sha]
    assert stored[0].read_bytes() == data
    for path in ("/files/..%2F..%2Fetc%2Fpasswd", "/files/" + "A" * 64, "/files/" + sha[:63]):
        status, _, answer = tw.api.call("GET", path)
        assert (status, answer["error"]["code"]) == (404, "not_found")


def test_the_stored_image_is_served_as_what_it_is(tw: TripWorld) -> None:
    data = image("JPEG")
    status, body = upload(tw, data, name="photo.jpg", ctype="text/html")  # the client lies
    assert (status, body["media_type"]) == (201, "image/jpeg")

    async def fetch() -> tuple[int, dict[str, str], bytes]:
        headers = {"Authorization": f"Bearer {tw.api.tokens[Role.SUPERVISOR]}"}
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{tw.api.url}/files/{body['sha256']}", headers=headers) as r,
        ):
            return r.status, dict(r.headers), await r.read()

    status, headers, got = asyncio.run(fetch())
    assert (status, got) == (200, data)
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]


def test_the_same_bytes_twice_are_one_file(tw: TripWorld) -> None:
    data = image("WEBP")
    first, again = upload(tw, data), upload(tw, data)
    assert first == again and first[0] == 201
    with psycopg.connect(tw.dsn) as conn:
        assert conn.execute("SELECT media_type FROM files").fetchall() == [("image/webp",)]


def test_a_form_without_the_file_or_not_a_form_is_refused(tw: TripWorld) -> None:
    status, body = upload(tw, image(), field="photo")
    assert (status, body["error"]["code"]) == (422, "unknown_field")
    status, _, body = tw.api.call("POST", "/driver/files", role=Role.DRIVER, json={"file": "x"})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    status, _, body = tw.api.call("POST", "/driver/files", role=Role.DISPATCHER, data=image())
    assert status == 403
    nothing_stored(tw)


def test_too_many_form_parts_are_refused(tw: TripWorld) -> None:
    async def go() -> tuple[int, Any]:
        form = aiohttp.FormData()
        for i in range(20):
            form.add_field(f"f{i}", "x")
        form.add_field("file", image(), filename="x.png", content_type="image/png")
        headers = {"Authorization": f"Bearer {tw.driver_token}"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(tw.api.url + "/driver/files", data=form, headers=headers) as r,
        ):
            return r.status, await r.json()

    status, body = asyncio.run(go())
    assert (status, body["error"]["code"]) == (413, "too_many_parts")


MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_random_bytes_are_refused_with_a_code_never_a_crash(magic: bytes, tail: bytes) -> None:
    try:
        stored = files.inspect(magic + tail, max_bytes=4096, max_pixels=1_000_000)
    except files.UploadRefused as exc:
        assert exc.code in {
            "empty_file", "file_too_large", "unsupported_type", "corrupt_image", "too_many_pixels",
        }  # fmt: skip
        assert exc.status in (413, 415, 422)
    else:  # only a real image passes, and it is described as what it is
        assert stored.media_type == files.sniff(magic + tail)
