"""Customer notifications by email, end to end: the driver API and the tower move a real
trip along, the outbox worker sends to an aiosmtpd server started here, and the emails
it received are read back (both languages, text and HTML parts, links, ETA windows,
the ePOD summary, failure reasons and next steps). Also: the customer's preferences, no
double sends, and an SMTP server that is down."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from deviation.model import Event
from oms_core import orders
from oms_core.alerts.delivery import Deliverer
from oms_core.notify import enqueue, when
from oms_core.states import OrderState
from tests.oms_core import order_in
from tests.oms_core.test_delivery import FAST, Mailbox, smtp_server
from tests.oms_core.test_driver_api import action, delivered, drive, png, upload
from tests.oms_core.trip_world import STOP1, STOP2, TRACKER, TripWorld, serve_trip
from tests.polling import until
from tests.ports import free_port
from tower import effects
from tower.plans import PlanSettings, load_vehicles

pytestmark = pytest.mark.db
S = OrderState
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
BASE = "https://menara.example.com"
# 10:07 UTC on a summer Tuesday is 12:07 in Amsterdam (the depot's zone): an hour's
# window around it starts on the nearest quarter hour to 11:37.
ETA = datetime(2026, 6, 2, 10, 7, tzinfo=UTC)
ETA_WINDOW = "Tuesday 2 June 2026, 11:30–12:30 CEST"


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


def sql(tw: TripWorld, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(tw.dsn, autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def notes(tw: TripWorld, order_id: int, event: str | None = None) -> list[dict[str, Any]]:
    """The order's outbox rows (of one event), oldest first."""
    return sql(
        tw,
        "SELECT * FROM deliveries WHERE order_id = %s AND (%s::text IS NULL OR event = %s)"
        " ORDER BY id",
        (order_id, event, event),
    )


def pending(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'").fetchone()
    assert row is not None
    return int(row[0])


def send_all(dsn: str, port: int, **kw: Any) -> Deliverer:
    """Run one outbox worker until nothing is pending; returns it (for its counters)."""
    deliverer = Deliverer(dsn=dsn, smtp_port=port, base_url=BASE, **{**FAST, **kw})

    async def go() -> None:
        async with deliverer:
            await until(lambda: pending(dsn) == 0, what="every notification recorded")

    asyncio.run(go())
    return deliverer


def mails(box: Mailbox) -> list[EmailMessage]:
    out = []
    for envelope in box.got:
        assert isinstance(envelope.content, bytes)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML) of a multipart/alternative customer email."""
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return (
        text.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def about(msgs: list[EmailMessage], tracking_number: str, word: str) -> EmailMessage:
    """The one email whose subject names the order and says ``word``."""
    (found,) = [m for m in msgs if tracking_number in m["Subject"] and word in m["Subject"]]
    return found


def tracking(tw: TripWorld, order_id: int) -> tuple[str, str]:
    """(tracking number, tracking link) of an order."""
    (row,) = sql(tw, "SELECT tracking_number, public_token FROM orders WHERE id = %s", (order_id,))
    return row["tracking_number"], f"{BASE}/t/{row['public_token']}"


def set_customer(tw: TripWorld, **values: Any) -> None:
    for column, value in values.items():
        sql(tw, f"UPDATE customers SET {column} = %s", (value,))


def window(tw: TripWorld, seq: int, language: str = "id") -> str:
    """The short ETA window of stop ``seq`` (planned arrival; no tower ETA)."""
    (stop,) = sql(tw, "SELECT planned_arrival FROM stops WHERE id = %s", (tw.stop_ids[seq - 1],))
    start, end = when.eta_window(stop["planned_arrival"], 60)
    return when.short_span(start, end, language, AMSTERDAM)


def signed(tw: TripWorld) -> str:
    status, sig = upload(tw, png())
    assert status == 201
    return str(sig["sha256"])


def test_the_confirmation_is_in_bahasa_indonesia_with_the_tracking_link(tw: TripWorld) -> None:
    o1 = tw.order_ids[0]
    assert [r["event"] for r in notes(tw, o1)] == ["confirmed"]  # queued on verification
    with smtp_server() as (box, port):
        send_all(tw.dsn, port)
    msgs = mails(box)
    assert len(msgs) == 2
    number, link = tracking(tw, o1)
    msg = about(msgs, number, "dikonfirmasi")
    (row,) = notes(tw, o1)
    assert msg["Subject"] == f"Pesanan {number} telah dikonfirmasi"
    assert msg["To"] == "ada@example.org" and msg["Content-Language"] == "id"
    assert msg["Message-ID"] == f"<menara-delivery-{row['id']}@localhost>"
    text, html = parts(msg)
    assert text.startswith("Halo Ada,\n")
    assert "Nomor resi: " + number in text and "Alamat pengiriman: Damrak 1, Amsterdam" in text
    assert "Jadwal pengiriman: " in text and link in text
    assert f'href="{link}"' in html and "Lacak pesanan" in html and 'lang="id"' in html
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 1, "")
    assert row["dedupe_key"] == f"order:{o1}:confirmed:email:ada@example.org"


def test_out_for_delivery_in_english_gives_the_eta_window(tw: TripWorld) -> None:
    set_customer(tw, language="en")
    sql(tw, "UPDATE stops SET eta = %s WHERE id = %s", (ETA, tw.stop_ids[0]))
    assert drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())[0] == 200
    (queued,) = notes(tw, tw.order_ids[0], "out_for_delivery")
    assert queued["payload"]["eta"] == ETA.isoformat()  # captured when it left
    sql(tw, "UPDATE stops SET eta = now()")  # later ETAs do not change what was said
    with smtp_server() as (box, port):
        send_all(tw.dsn, port)
    number, link = tracking(tw, tw.order_ids[0])
    msg = about(mails(box), number, "on its way")
    assert msg["Subject"] == f"Your order {number} is on its way, arriving 11:30-12:30 CEST"
    text, html = parts(msg)
    assert text.startswith("Hello Ada,\n") and "Your order has left our depot" in text
    assert f"Expected arrival: {ETA_WINDOW}" in text
    assert "Delivery address: Damrak 1, Amsterdam" in text and link in text
    assert ETA_WINDOW in html and f'href="{link}"' in html


def test_a_partial_delivery_tells_what_came_what_did_not_and_why(tw: TripWorld) -> None:
    o2 = tw.order_ids[1]
    body = action(
        pos=STOP2, outcome="partially_delivered", recipient_name="Bo <b>", signature=signed(tw),
        lines=[{"line_no": 1, "delivered_qty": 1, "damaged_qty": 0}], reason_code="damaged",
    )  # fmt: skip
    status, ans = drive(tw, "POST", f"/driver/orders/{o2}/delivery", body)
    assert status == 200, ans
    follow = ans["follow_up_order_id"]
    with smtp_server() as (box, port):
        send_all(tw.dsn, port)
    number, _ = tracking(tw, o2)
    again, _ = tracking(tw, follow)
    msg = about(mails(box), number, "Sebagian")
    assert msg["Subject"] == f"Sebagian pesanan {number} telah diantar"
    text, html = parts(msg)
    (epod,) = sql(tw, "SELECT at FROM epods WHERE order_id = %s", (o2,))
    assert "Diterima oleh: Bo <b>" in text
    assert f"Diterima pada: {when.moment(epod['at'], 'id', AMSTERDAM)}\n" in text
    assert "Barang yang diterima:\n  - 1 × A\n" in text
    assert "Barang yang belum diterima:\n  - 1 × A\n" in text
    assert "Alasan: Barang rusak" in text
    assert f"nomor resi baru {again}" in text  # the re-delivery order
    assert "Bo &lt;b&gt;" in html and "<b>" not in html  # what people typed is escaped


def test_a_full_delivery_names_the_recipient_and_the_goods(tw: TripWorld) -> None:
    set_customer(tw, language="en")
    o1 = tw.order_ids[0]
    body = delivered(signed(tw))
    assert drive(tw, "POST", f"/driver/orders/{o1}/delivery", body)[0] == 200
    with smtp_server() as (box, port):
        send_all(tw.dsn, port)
    number, _ = tracking(tw, o1)
    text, _ = parts(about(mails(box), number, "has been delivered"))
    (epod,) = sql(tw, "SELECT at FROM epods WHERE order_id = %s", (o1,))
    assert "Received by: Ada\n" in text
    assert f"Delivered on: {when.moment(epod['at'], 'en', AMSTERDAM)}\n" in text
    assert "Items received:\n  - 3 × A\n  - 2 × B\n" in text and "not delivered" not in text
    assert "Tell us on the tracking page" in text


def test_a_failed_attempt_gives_the_reason_and_what_happens_next(tw: TripWorld) -> None:
    o1, o2 = tw.order_ids
    absent = action(pos=STOP1, outcome="failed", reason_code="customer_absent")
    status, ans = drive(tw, "POST", f"/driver/orders/{o1}/delivery", absent)
    assert status == 200, ans
    refused = action(pos=STOP2, outcome="failed", reason_code="refused")
    assert drive(tw, "POST", f"/driver/orders/{o2}/delivery", refused)[0] == 200
    with smtp_server() as (box, port):
        send_all(tw.dsn, port)
    msgs = mails(box)
    first, again = tracking(tw, o1)[0], tracking(tw, ans["follow_up_order_id"])[0]
    text, _ = parts(about(msgs, first, "belum dapat diantar"))
    assert "Alasan: Pelanggan tidak ada di tempat" in text
    assert "Waktu percobaan: " in text
    assert f"pengiriman ulang untuk barang yang belum diterima dengan nomor resi baru {again}" in (
        " ".join(text.split())
    )
    second = tracking(tw, o2)[0]
    text, _ = parts(about(msgs, second, "belum dapat diantar"))
    flat = " ".join(text.split())
    assert "Alasan: Pelanggan menolak barang" in flat
    assert "barangnya kami bawa kembali ke gudang dan tidak akan diantar ulang" in flat
    assert f"Untuk pengembalian dana, hubungi layanan pelanggan kami dengan menyebutkan nomor resi {second}" in flat  # fmt: skip # noqa: E501
    assert "nomor resi baru" not in flat  # a refusal gets no re-delivery


def test_the_tower_marking_a_stop_at_risk_sends_one_delay_notice(tw: TripWorld) -> None:
    s1 = tw.stop_ids[0]
    late = ETA.timestamp() + 105 * 60  # 13:52 in Amsterdam: window 13:15–14:15
    risk = {"stop_id": s1, "seq": 1, "eta_s": late, "minutes_late": 25.0, "order_ids": []}
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        vehicle = load_vehicles(conn, PlanSettings())[TRACKER]
        for n in range(2):  # at risk, cleared, at risk again: told once
            with conn.transaction():
                opened = Event("eta_at_risk", "open", late - 3600 + n * 60, str(s1), risk)
                effects.apply(conn, TRACKER, vehicle, [effects.Finding(opened)])
                closed = Event("eta_at_risk", "close", late - 3590 + n * 60, str(s1), risk)
                effects.apply(conn, TRACKER, vehicle, [effects.Finding(closed)])
    (row,) = notes(tw, tw.order_ids[0], "delayed")
    assert notes(tw, tw.order_ids[1], "delayed") == []  # stop 2 is on time
    with smtp_server() as (box, port):
        send_all(tw.dsn, port)
    number, link = tracking(tw, tw.order_ids[0])
    msg = about(mails(box), number, "terlambat")
    assert msg["Subject"] == f"Pengiriman {number} terlambat, perkiraan tiba 13.15-14.15 CEST"
    text, _ = parts(msg)
    assert "Perkiraan tiba terbaru: Selasa, 2 Juni 2026, 13.15–14.15 CEST" in text
    assert "Mohon maaf, pengiriman pesanan Anda terlambat" in text and link in text
    assert sql(tw, "SELECT state FROM deliveries WHERE id = %s", (row["id"],)) == [
        {"state": "delivered"}
    ]


def test_preferences_decide_what_is_queued(tw: TripWorld) -> None:
    set_customer(tw, notify_prefs='{"email": false, "sms": true}')  # no gateway registered
    assert drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())[0] == 200
    assert notes(tw, tw.order_ids[0], "out_for_delivery") == []
    set_customer(tw, notify_prefs='{"email": true}', email=None)  # wants email, has none
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        made = orders.create_order(conn, order_in(tw.api.world))
        orders.transition(conn, made.id, S.VERIFIED, actor="test")
    assert notes(tw, made.id) == []


def test_nothing_is_queued_or_sent_twice(tw: TripWorld) -> None:
    o1, o2 = tw.order_ids
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        assert enqueue.order_moved(conn, o1, S.VERIFIED) == 0  # the same event again
    assert drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())[0] == 200
    with psycopg.connect(tw.dsn, autocommit=True) as conn:  # the geofence sees it leave too
        vehicle = load_vehicles(conn, PlanSettings())[TRACKER]
        left = Event("depot_departure", "info", datetime.now(UTC).timestamp(), "",
                     {"departed_s": datetime.now(UTC).timestamp()})  # fmt: skip
        effects.apply(conn, TRACKER, vehicle, [effects.Finding(left)])
    body = action(pos=STOP1, outcome="delivered", recipient_name="Ada", signature=signed(tw),
                  cod_collected="35.00")  # fmt: skip
    first = drive(tw, "POST", f"/driver/orders/{o1}/delivery", body)
    replay = drive(tw, "POST", f"/driver/orders/{o1}/delivery", body)  # the phone retried
    assert (first[0], replay[0], replay[1]["replayed"]) == (200, 200, True)
    assert [r["event"] for r in notes(tw, o1)] == ["confirmed", "out_for_delivery", "delivered"]
    assert [r["event"] for r in notes(tw, o2)] == ["confirmed", "out_for_delivery"]
    with smtp_server() as (box, port):
        send_all(tw.dsn, port)
    got = sorted(m["Subject"] for m in mails(box))
    n1, n2 = tracking(tw, o1)[0], tracking(tw, o2)[0]
    # o1 was delivered before the worker ran: its earlier news is no longer told
    told = [f"Pesanan {n1} telah diterima", f"Pesanan {n2} telah dikonfirmasi",
            f"Pesanan {n2} sedang diantar, tiba sekitar {window(tw, 2)}"]  # fmt: skip
    assert got == sorted(told)
    (stale,) = notes(tw, o1, "out_for_delivery")
    assert stale["state"] == "failed" and stale["attempts"] == 1
    assert (
        "is already delivered, so this out_for_delivery message would mislead"
        in (stale["last_error"])
    )


def test_two_workers_racing_send_each_notification_once(tw: TripWorld) -> None:
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        conn.execute("UPDATE stock SET on_hand = 1000")
        for _ in range(18):
            made = orders.create_order(conn, order_in(tw.api.world))
            orders.transition(conn, made.id, S.VERIFIED, actor="test")
    with smtp_server() as (box, port):

        async def race() -> None:
            kw = {**FAST, "batch_size": 3, "smtp_port": port, "base_url": BASE}
            async with Deliverer(dsn=tw.dsn, **kw) as a, Deliverer(dsn=tw.dsn, **kw) as b:

                def sent() -> int:  # a row is recorded a moment before it is counted
                    return a.counters["delivered"] + b.counters["delivered"]

                await until(lambda: pending(tw.dsn) == 0 and sent() >= 20, what="all 20 sent")
                assert sent() == 20

        asyncio.run(race())
    ids = [m["Message-ID"] for m in mails(box)]
    assert len(ids) == len(set(ids)) == 20
    rows = sql(tw, "SELECT state, attempts FROM deliveries")
    assert rows == [{"state": "delivered", "attempts": 1}] * 20


def test_smtp_down_is_retried_then_recorded_as_failed(tw: TripWorld) -> None:
    o1 = tw.order_ids[0]
    d = send_all(tw.dsn, free_port(), max_attempts=3)
    assert (d.counters["retried"], d.counters["failed"]) == (4, 2)
    status, _, page = tw.api.call("GET", f"/orders/{o1}/notifications")
    assert status == 200 and page["order_id"] == o1
    (shown,) = page["notifications"]
    assert (shown["event"], shown["medium"], shown["to"], shown["state"], shown["attempts"]) == (
        "confirmed", "email", "ada@example.org", "failed", 3,
    )  # fmt: skip
    assert shown["last_error"].startswith("SMTP ") and shown["delivered_at"] is None
