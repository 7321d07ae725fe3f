"""Complaints from the tracking link and the rate limit of the public routes, over real
sockets: stored with their photo, listed for the control room, at most five per order,
hostile uploads refused with nothing stored, and floods answered 429."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from oms_core.api import Role
from oms_core.api.app import OPERATIONS
from oms_core.api.ratelimit import RateLimiter, client_key
from tests.oms_core.test_driver_api import png
from tests.oms_core.trip_world import TripWorld, serve_trip

pytestmark = pytest.mark.db
Reply = tuple[int, dict[str, str], Any]
SCRIPT_PNG = b"\x89PNG\r\n\x1a\n<script>alert(document.cookie)</script>IEND\xaeB`\x82"


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files", upload_max_bytes=50_000)


def root(tw: TripWorld) -> str:
    return tw.api.url.removesuffix("/api/v1")


def send(
    url: str,
    fields: dict[str, str] | None = None,
    photo: tuple[bytes, str] | None = None,
    **kw: Any,
) -> Reply:
    """POST a multipart form (``fields`` and an optional photo), or ``kw`` as given."""

    async def go() -> Reply:
        data: Any = kw.pop("data", None)
        if fields is not None:
            data = aiohttp.FormData(default_to_multipart=True)  # as browsers send it
            for name, value in fields.items():
                data.add_field(name, value)
            if photo is not None:
                data.add_field("photo", photo[0], filename="p.png", content_type=photo[1])
        async with (
            aiohttp.ClientSession() as s,
            s.post(url, data=data, allow_redirects=False, **kw) as r,
        ):
            body = await (r.json() if r.content_type == "application/json" else r.text())
            return r.status, dict(r.headers), body

    return asyncio.run(go())


def complain(tw: TripWorld, n: int = 0, **kw: Any) -> Reply:
    return send(f"{tw.api.url}/track/{tw.tracking[n]}/complaints", **kw)


def count(tw: TripWorld, table: str) -> int:
    with psycopg.connect(tw.dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def stored_files(tw: TripWorld) -> list[Path]:
    return [p for p in tw.files.rglob("*") if p.is_file()] if tw.files.exists() else []


def test_a_json_complaint_is_stored_for_the_order(tw: TripWorld) -> None:
    body = {"category": "late", "text": "  Two hours late.\r\nAgain.  "}
    status, headers, receipt = complain(tw, json=body)
    assert status == 201, receipt
    assert headers["Location"] == f"/api/v1/track/{tw.tracking[0]}"
    assert receipt["complaints_left"] == 4
    made = receipt["complaint"]
    assert made == {
        "category": "late", "category_label": "Pengiriman terlambat",
        "text": "Two hours late.\nAgain.", "state": "open",
        "state_label": "Sudah kami terima dan sedang ditindaklanjuti",
        "created_at": made["created_at"], "photo_url": None,
    }  # fmt: skip
    with psycopg.connect(tw.dsn) as conn:
        rows = conn.execute("SELECT order_id, category, text, photo_sha256 FROM complaints")
        assert rows.fetchall() == [(tw.order_ids[0], "late", "Two hours late.\nAgain.", None)]
    page = tw.api.call("GET", f"/track/{tw.tracking[0]}?lang=en", role=None)[2]
    assert [c["category_label"] for c in page["complaints"]] == ["Late delivery"]
    assert page["complaints_left"] == 4
    assert tw.api.call("GET", f"/track/{tw.tracking[1]}", role=None)[2]["complaints"] == []


def test_a_form_complaint_keeps_its_photo_and_the_control_room_reads_them(
    tw: TripWorld,
) -> None:
    assert complain(tw, json={"category": "billing", "text": "Charged twice"})[0] == 201
    photo = png((30, 30), "red")
    status, _, receipt = complain(
        tw, 1, fields={"category": "damaged", "text": "The box was crushed"},
        photo=(photo, "image/png"), params={"lang": "en"},
    )  # fmt: skip
    assert status == 201, receipt
    made = receipt["complaint"]
    assert made["category_label"] == "Damaged goods"
    sha = made["photo_url"].rsplit("/", 1)[1]
    assert made["photo_url"] == f"/t/{tw.tracking[1]}/files/{sha}"
    async_get = asyncio.run(_get(root(tw) + made["photo_url"]))
    assert async_get == (200, photo)
    assert asyncio.run(_get(f"{root(tw)}/t/{tw.tracking[0]}/files/{sha}"))[0] == 404

    status, _, page = tw.api.call("GET", "/complaints", role=Role.SUPERVISOR)
    assert status == 200 and page["next_cursor"] is None
    assert [(c["order_id"], c["category"], c["photo_sha256"]) for c in page["complaints"]] == [
        (tw.order_ids[1], "damaged", sha), (tw.order_ids[0], "billing", None),
    ]  # fmt: skip
    number = page["complaints"][0]["tracking_number"]
    assert number.startswith("MN-")
    status, _, one = tw.api.call("GET", "/complaints?limit=1")
    assert [c["category"] for c in one["complaints"]] == ["damaged"]
    _, _, rest = tw.api.call("GET", f"/complaints?limit=1&cursor={one['next_cursor']}")
    assert [c["category"] for c in rest["complaints"]] == ["billing"]
    assert rest["next_cursor"] is None
    _, _, only = tw.api.call("GET", f"/complaints?order_id={tw.order_ids[0]}")
    assert [c["category"] for c in only["complaints"]] == ["billing"]
    since = page["complaints"][0]["created_at"].replace("+", "%2B")
    _, _, later = tw.api.call("GET", f"/complaints?since={since}")
    assert [c["category"] for c in later["complaints"]] == ["damaged"]
    status, _, bad = tw.api.call("GET", "/complaints?since=yesterday")
    assert (status, bad["error"]["details"][0]["field"]) == (422, "since")

    status, _, listed = tw.api.call("GET", f"/orders/{tw.order_ids[1]}/complaints")
    assert status == 200 and [c["text"] for c in listed["complaints"]] == ["The box was crushed"]
    assert tw.api.call("GET", "/orders/999999/complaints")[0] == 404
    for role in (Role.DRIVER, Role.CUSTOMER):
        assert tw.api.call("GET", "/complaints", role=role)[0] == 403


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.read()


@pytest.mark.parametrize(
    ("kw", "status", "code"),
    [
        ({"data": b"late: it was late", "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type"),
        ({"data": png(), "headers": {"Content-Type": "image/png"}}, 415, "unsupported_media_type"),
        ({"fields": {"category": "damaged", "text": "see photo"},
          "photo": (b"GIF89a" + b"\0" * 64, "image/gif")}, 415, "unsupported_type"),
        ({"fields": {"category": "damaged", "text": "see photo"},
          "photo": (png((1200, 1200)) + b"\0" * 60_000, "image/png")}, 413, "file_too_large"),
        ({"fields": {"category": "damaged", "text": "see photo"},
          "photo": (SCRIPT_PNG, "image/png")}, 422, "corrupt_image"),
        ({"fields": {"category": "lost", "text": "where is it"}}, 422, "invalid_value"),
        ({"fields": {"category": "late", "text": " \r\n "}}, 422, "invalid_value"),
        ({"fields": {"category": "late", "text": "x" * 2001}}, 422, "invalid_value"),
        ({"fields": {"category": "late", "text": "late", "name": "Eve"}}, 422, "unknown_field"),
        ({"json": {"category": "late"}}, 422, "missing_field"),
        ({"json": {"category": "late", "text": "a\x00b"}}, 422, "invalid_value"),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400,
         "bad_json"),
    ],
)  # fmt: skip
def test_hostile_complaints_are_refused_and_nothing_is_stored(
    tw: TripWorld, kw: dict[str, Any], status: int, code: str
) -> None:
    got, _, answer = complain(tw, **kw)
    assert (got, answer["error"]["code"]) == (status, code), answer
    assert answer["error"]["message"]
    assert (count(tw, "complaints"), count(tw, "files"), stored_files(tw)) == (0, 0, [])


def test_an_unknown_link_takes_no_complaint(tw: TripWorld) -> None:
    tracked = tw.api.call("GET", f"/track/{'x' * 32}", role=None)
    for token in ("x" * 32, "bad", tw.tracking[0][:-1] + "!"):
        status, _, answer = send(
            f"{tw.api.url}/track/{token}/complaints", json={"category": "late", "text": "hi"}
        )
        assert (status, answer) == (404, tracked[2])
    assert count(tw, "complaints") == 0


def test_the_sixth_complaint_is_refused_and_stores_nothing(tw: TripWorld) -> None:
    for i in range(5):
        status, _, receipt = complain(tw, json={"category": "other", "text": f"number {i}"})
        assert (status, receipt["complaints_left"]) == (201, 4 - i)
    status, _, answer = complain(
        tw, fields={"category": "other", "text": "six"}, photo=(png(), "image/png")
    )
    assert (status, answer["error"]["code"]) == (429, "too_many_complaints")
    assert "contact you" in answer["error"]["message"]
    assert (count(tw, "complaints"), count(tw, "files")) == (5, 0)
    page = tw.api.call("GET", f"/track/{tw.tracking[0]}", role=None)[2]
    assert page["complaints_left"] == 0


def test_complaints_sent_at_once_still_stop_at_five(tw: TripWorld) -> None:
    url = f"{tw.api.url}/track/{tw.tracking[1]}/complaints"

    async def flood() -> list[int]:
        async with aiohttp.ClientSession() as s:

            async def one(i: int) -> int:
                body = {"category": "late", "text": f"again {i}"}
                async with s.post(url, json=body) as r:
                    return r.status

            return list(await asyncio.gather(*(one(i) for i in range(9))))

    statuses = asyncio.run(flood())
    assert sorted(statuses) == [201] * 5 + [429] * 4
    assert count(tw, "complaints") == 5


def test_the_page_form_posts_then_redirects_back_with_thanks(tw: TripWorld) -> None:
    token = tw.tracking[0]
    status, headers, _ = send(
        f"{root(tw)}/t/{token}/complaint?lang=en",
        fields={"category": "wrong_items", "text": "I got B instead of A"},
        photo=(b"", "application/octet-stream"),  # the browser's empty file input
    )
    assert (status, headers["Location"]) == (303, f"/t/{token}?sent=1&lang=en#complaint")
    assert (count(tw, "complaints"), count(tw, "files")) == (1, 0)
    page = asyncio.run(_get(f"{root(tw)}/t/{token}?sent=1&lang=en"))[1].decode()
    assert "Thank you, we received your complaint" in page
    assert "I got B instead of A" in page


def test_a_refused_form_comes_back_with_what_to_fix_and_what_was_typed(tw: TripWorld) -> None:
    token = tw.tracking[0]
    status, headers, page = send(
        f"{root(tw)}/t/{token}/complaint",
        fields={"category": "damaged", "text": "Crushed <b>box</b>"},
        photo=(SCRIPT_PNG, "image/png"),
    )
    assert status == 422 and headers["Content-Type"].startswith("text/html")
    assert "Foto tidak bisa dibaca" in page
    assert '<option value="damaged" selected>' in page
    assert "Crushed &lt;b&gt;box&lt;/b&gt;" in page and "<b>box" not in page
    assert (count(tw, "complaints"), count(tw, "files")) == (0, 0)
    status, _, page = send(f"{root(tw)}/t/{'x' * 30}/complaint", fields={"category": "late"})
    assert status == 404 and "tidak ditemukan" in page


@pytest.fixture
def strict(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files", public_rate_per_min=8)  # burst 2


def test_public_routes_answer_429_with_retry_after_past_the_limit(strict: TripWorld) -> None:
    tw, token = strict, strict.tracking[0]
    for _ in range(2):
        assert tw.api.call("GET", f"/track/{token}", role=None)[0] == 200
    status, headers, body = tw.api.call("GET", f"/track/{token}", role=None)
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert 1 <= int(headers["Retry-After"]) <= 8  # a token comes back every 7.5 s
    assert f"wait {headers['Retry-After']} s" in body["error"]["message"]
    status, headers, _ = tw.api.call(
        "GET", f"/track/{token}", role=None, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert status == 429  # the header any client can write changes nothing
    page = asyncio.run(_status_type(f"{root(tw)}/t/{token}"))
    assert page == (429, "text/html")
    status, _, body = tw.api.call("POST", "/driver/sign-in", role=None, json={"code": "x" * 40})
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    status, _, body = complain(tw, json={"category": "late", "text": "late"})
    assert status == 429 and count(tw, "complaints") == 0
    assert tw.api.call("GET", "/orders")[0] == 200  # a token's routes are not limited


async def _status_type(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        await r.read()
        return r.status, r.content_type


def test_the_bucket_refills_and_bursts_as_configured() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one a second, a burst of 15
    assert [limiter.take("a") for _ in range(15)] == [0.0] * 15
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] += 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("b") == 0.0  # another address has its own bucket
    assert limiter.counters() == {"refused": 2, "evicted": 0, "clients": 2}
    now[0] += 3600
    assert [limiter.take("a") for _ in range(16)].count(0.0) == 15  # never above the burst
    off = RateLimiter(0)
    assert all(off.take("a") == 0.0 for _ in range(1000)) and off.clients == 0


def test_memory_is_bounded_by_evicting_the_address_seen_longest_ago() -> None:
    limiter = RateLimiter(4, max_clients=3, clock=lambda: 0.0)  # a burst of 1
    for key in ("a", "b", "c"):
        assert limiter.take(key) == 0.0
    assert limiter.take("a") > 0  # a is now the most recently seen
    assert limiter.take("d") == 0.0  # evicts b
    assert (limiter.clients, limiter.evicted) == (3, 1)
    assert limiter.take("c") > 0 and limiter.take("a") > 0  # both still held
    assert limiter.take("b") == 0.0  # forgotten: a full bucket again
    for i in range(10_000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert limiter.clients == 3


def test_ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "unknown"


def test_the_document_lists_429_on_every_limited_operation() -> None:
    limited = {op.operation_id for op in OPERATIONS if 429 in op.responses}
    assert limited == {"trackOrder", "createComplaint", "driverSignIn"}
    assert all(op.roles is None for op in OPERATIONS if op.operation_id in limited)
