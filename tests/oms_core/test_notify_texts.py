"""The words and times of customer messages, without a database: windows on quarter
hours that hold the ETA, dates read naturally in both languages, every text in both,
SMS texts that fit one SMS, HTML that escapes what people typed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from oms_core.execution.reasons import REASONS
from oms_core.notify import EVENTS, render, texts, when
from oms_core.notify.facts import Facts, FollowUp, Line, Proof

JAKARTA = ZoneInfo("Asia/Jakarta")
AT = datetime(2026, 6, 2, 3, 7, tzinfo=UTC)  # Tuesday 10:07 in Jakarta
URL = "https://menara.example.com"  # + /t/<32-character token>: a 61-character link
FACTS = Facts(
    order_id=7, tracking_number="MN-ABCDEFGH2", public_token="T" * 32, state="verified",
    address="Jl. Sudirman 1, Jakarta", window_start=AT, window_end=AT + timedelta(hours=3),
    payment_state="paid", customer="Ada", language="id", time_zone="Asia/Jakarta",
    lines=(Line("Air mineral", 3, None), Line("Teh", 2, None)),
)  # fmt: skip


def test_eta_windows_are_quarter_hours_around_the_eta() -> None:
    start, end = when.eta_window(datetime(2026, 6, 2, 10, 7, tzinfo=UTC), 60)
    assert (start.time().isoformat(), end.time().isoformat()) == ("09:30:00", "10:30:00")
    start, end = when.eta_window(datetime(2026, 6, 2, 10, 8, tzinfo=UTC), 60)
    assert (start.time().isoformat(), end.time().isoformat()) == ("09:45:00", "10:45:00")
    start, end = when.eta_window(datetime(2026, 6, 2, 10, 8, tzinfo=UTC), 50)  # rounded up
    assert end - start == timedelta(minutes=60)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.integers(min_value=0, max_value=600))  # fmt: skip
def test_an_eta_window_always_holds_the_eta(eta: datetime, width: int) -> None:
    t = eta.replace(tzinfo=UTC)
    start, end = when.eta_window(t, width)
    assert start <= t <= end
    assert start.timestamp() % 900 == 0 and (end - start).total_seconds() % 900 == 0
    assert (end - start) >= timedelta(minutes=max(width, 15))


def test_times_read_the_way_each_language_writes_them() -> None:
    end = AT + timedelta(hours=1)
    assert when.span(AT, end, "id", JAKARTA) == "Selasa, 2 Juni 2026, 10.07–11.07 WIB"
    assert when.span(AT, end, "en", JAKARTA) == "Tuesday 2 June 2026, 10:07–11:07 WIB"
    assert when.moment(AT, "id", JAKARTA) == "Selasa, 2 Juni 2026 pukul 10.07 WIB"
    assert when.moment(AT, "en", JAKARTA) == "Tuesday 2 June 2026 at 10:07 WIB"
    late = AT + timedelta(hours=14)  # 00:07 the next day
    assert when.span(AT, late, "id", JAKARTA) == (
        "Selasa, 2 Juni 2026 10.07 – Rabu, 3 Juni 2026 00.07 WIB"
    )
    assert when.short_span(AT, end, "id", JAKARTA) == "10.07-11.07 WIB"
    assert when.zone("Not/AZone") is UTC


def test_every_text_exists_in_both_languages() -> None:
    assert set(texts.T["id"]) == set(texts.T["en"])
    for lang in ("id", "en"):
        assert all(v.strip() == v and "  " not in v for v in texts.T[lang].values())


def _outcomes() -> list[tuple[str, Facts]]:
    """Every outcome a message can tell (its state and the order): each reason, with
    and without a re-delivery."""
    out = [("delivered", replace(FACTS, state="delivered", lines=(Line("Teh", 2, 2),)))]
    proof = Proof("failed", None, "", AT, "")
    follow = FollowUp("MN-ZZZZZZZZ2", AT + timedelta(days=1), AT + timedelta(days=1, hours=3))
    for reason in REASONS:
        for state in ("partially_delivered", "failed"):
            lines = (Line("Teh", 2, 1 if state == "partially_delivered" else 0),)
            base = replace(FACTS, state=state, reason_code=reason, lines=lines,
                           proof=replace(proof, outcome=state, reason_code=reason))  # fmt: skip
            out += [(state, base), (state, replace(base, follow_up=follow))]
    return out


def test_sms_texts_fit_one_sms_in_plain_ascii() -> None:
    news = [(event, "", FACTS) for event in EVENTS[:3]]
    told = [("failed" if st == "failed" else "delivered", st, f) for st, f in _outcomes()]
    for lang in ("id", "en"):
        for event, state, facts in news + told:
            payload = {"event": event, "state": state, "eta": AT.isoformat()}
            msg = texts.compose(replace(facts, language=lang), payload,
                                base_url=URL, eta_window_min=60)  # fmt: skip
            assert msg.sms.isascii() and len(msg.sms) <= 160, (lang, state, msg.sms)
            assert msg.sms.endswith(f"{URL}/t/{'T' * 32}")


def test_a_refusal_explains_the_return_and_the_money() -> None:
    proof = Proof("failed", "refused", "", AT, "")
    facts = replace(FACTS, state="failed", reason_code="refused", proof=proof)
    msg = texts.compose(facts, {"event": "failed", "state": "failed"}, base_url=URL,
                        eta_window_min=60)  # fmt: skip
    assert msg.outro == (
        "Karena pesanan ditolak, barangnya kami bawa kembali ke gudang dan tidak akan diantar"
        " ulang.",
        "Untuk pengembalian dana, hubungi layanan pelanggan kami dengan menyebutkan nomor"
        " resi MN-ABCDEFGH2.",
    )
    unpaid = replace(facts, payment_state="cod_pending", language="en")
    msg = texts.compose(unpaid, {"event": "failed", "state": "failed"}, base_url=URL,
                        eta_window_min=60)  # fmt: skip
    assert msg.outro[1] == "You are not charged for the goods that go back."
    assert ("Reason", "Customer refused the goods") in msg.facts


def test_other_reasons_tell_the_drivers_note_to_the_customer() -> None:
    proof = Proof("failed", "other", "", AT, "  Gate\nlocked  ")
    facts = replace(FACTS, state="failed", reason_code="other", proof=proof)
    msg = texts.compose(facts, {"event": "failed"}, base_url=URL, eta_window_min=60)
    assert ("Alasan", "Gate locked") in msg.facts
    assert "Lainnya" in msg.sms and "Gate" not in msg.sms  # notes stay out of SMS


def test_news_from_before_the_outcome_is_stale_after_it() -> None:
    delivered = replace(FACTS, state="delivered")
    assert texts.stale(delivered, "out_for_delivery") and texts.stale(delivered, "confirmed")
    assert not texts.stale(delivered, "delivered")
    assert not texts.stale(replace(FACTS, state="out_for_delivery"), "delayed")
    assert texts.stale(replace(FACTS, state="cancelled"), "confirmed")


def test_the_html_part_escapes_what_people_typed() -> None:
    hostile = replace(FACTS, customer='<script>alert("x")</script>',
                      address="<img src=x onerror=alert(1)>")  # fmt: skip
    msg = texts.compose(hostile, {"event": "confirmed"}, base_url=URL, eta_window_min=60)
    mail = render.email(msg, sender="menara@shop.example", to="ada@example.org", delivery_id=42)
    html = mail.get_body(("html",))
    text = mail.get_body(("plain",))
    assert html is not None and text is not None
    body = html.get_content()
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
    assert '<script>alert("x")</script>' in text.get_content()  # plain text stays plain
    assert mail["Message-ID"] == "<menara-delivery-42@shop.example>"


def test_a_delivery_lists_the_goods_with_the_damage_found() -> None:
    proof = Proof("delivered", None, "Bo", AT, "")
    lines = (Line("Air mineral", 3, 3, 1), Line("Teh", 2, 2))
    facts = replace(FACTS, state="delivered", lines=lines, proof=proof, language="en")
    msg = texts.compose(facts, {"event": "delivered", "state": "delivered"}, base_url=URL,
                        eta_window_min=60)  # fmt: skip
    assert msg.sections == (texts.Section("Items received", ("3 × Air mineral, 1 damaged",
                                                             "2 × Teh")),)  # fmt: skip
    assert msg.facts[:2] == (("Received by", "Bo"),
                             ("Delivered on", "Tuesday 2 June 2026 at 10:07 WIB"))  # fmt: skip
    assert msg.outro[0] == "Some items were recorded as damaged on delivery."
    assert msg.sms == f"Order MN-ABCDEFGH2 was delivered at 10:07. Details: {URL}/t/{'T' * 32}"
