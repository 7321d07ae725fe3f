"""The words of every customer message, in Bahasa Indonesia and English.

``compose`` turns an event's payload and the order's facts into a ``Message``: the
subject, the paragraphs and labelled facts the email templates lay out, and the short
SMS / WhatsApp text. Everything here is plain text; escaping is the HTML template's job
(jinja2 autoescape), so a recipient called ``<b>`` is shown, never interpreted. SMS
texts stay ASCII (a tracking number, times, a reason label) so one SMS holds 160
characters; names and notes the customer or driver typed stay out of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from oms_core.execution.reasons import NO_REDELIVERY, REASONS
from oms_core.notify import when
from oms_core.notify.facts import Facts

__all__ = ["OUTCOME_STATES", "Message", "Section", "compose", "stale", "tracking_url"]

TRACK_PATH = "/t/{token}"  # the customer's tracking page, below the base URL
# Once an order has one of these, news from before it would mislead.
OUTCOME_STATES = frozenset({"delivered", "partially_delivered", "failed", "completed", "cancelled"})
_BEFORE_OUTCOME = frozenset({"confirmed", "out_for_delivery", "delayed"})
_PAID = frozenset({"paid", "cod_collected"})
_NOTES_MAX = 200

T: dict[str, dict[str, str]] = {
    "id": {
        "greeting": "Halo {name},",
        "tracking_number": "Nomor resi",
        "window": "Jadwal pengiriman",
        "address": "Alamat pengiriman",
        "eta": "Perkiraan tiba",
        "new_eta": "Perkiraan tiba terbaru",
        "recipient": "Diterima oleh",
        "delivered_at": "Diterima pada",
        "attempted_at": "Waktu percobaan",
        "reason": "Alasan",
        "delivered_items": "Barang yang diterima",
        "missing_items": "Barang yang belum diterima",
        "damaged": "{n} rusak",
        "link": "Lacak pesanan",
        "link_plain": "Lacak pesanan Anda di sini:",
        "footer": "Email ini dikirim otomatis oleh Menara tentang pesanan {tn}."
        " Mohon jangan membalas email ini.",
        "confirmed.subject": "Pesanan {tn} telah dikonfirmasi",
        "confirmed.heading": "Pesanan Anda telah dikonfirmasi",
        "confirmed.intro": "Terima kasih atas pesanan Anda. Pesanan sudah kami periksa dan"
        " akan diantar sesuai jadwal di bawah ini.",
        "confirmed.outro": "Kami akan mengabari Anda lagi saat pesanan mulai diantar.",
        "confirmed.sms": "Pesanan {tn} telah dikonfirmasi. Lacak: {url}",
        "out_for_delivery.subject": "Pesanan {tn} sedang diantar, tiba sekitar {short}",
        "out_for_delivery.heading": "Pesanan Anda sedang diantar",
        "out_for_delivery.intro": "Pesanan Anda sudah berangkat dari gudang kami dan sedang"
        " dalam perjalanan ke alamat Anda.",
        "out_for_delivery.outro": "Pastikan ada yang dapat menerima pesanan pada waktu"
        " tersebut. Perkiraan ini dapat berubah mengikuti kondisi lalu lintas.",
        "out_for_delivery.sms": "Pesanan {tn} sedang diantar, tiba sekitar {short}. Lacak: {url}",
        "delayed.subject": "Pengiriman {tn} terlambat, perkiraan tiba {short}",
        "delayed.heading": "Pengiriman Anda terlambat",
        "delayed.intro": "Mohon maaf, pengiriman pesanan Anda terlambat dari jadwal. Berikut"
        " perkiraan waktu tiba yang baru.",
        "delayed.outro": "Kami mohon maaf atas ketidaknyamanan ini. Anda dapat memantau"
        " perjalanan pesanan melalui tautan di bawah.",
        "delayed.sms": "Maaf, pengiriman {tn} terlambat. Perkiraan tiba {short}. Lacak: {url}",
        "delivered.subject": "Pesanan {tn} telah diterima",
        "delivered.heading": "Pesanan Anda telah diterima",
        "delivered.intro": "Pesanan Anda telah kami antar. Terima kasih telah berbelanja"
        " bersama kami.",
        "delivered.outro": "Ada masalah dengan pesanan ini? Sampaikan kepada kami melalui"
        " halaman pelacakan.",
        "delivered.damaged": "Sebagian barang tercatat rusak saat diterima.",
        "delivered.sms": "Pesanan {tn} telah diterima pukul {time}. Detail: {url}",
        "partial.subject": "Sebagian pesanan {tn} telah diantar",
        "partial.heading": "Sebagian pesanan Anda telah diantar",
        "partial.intro": "Kami telah mengantar sebagian pesanan Anda. Sisanya belum dapat"
        " diantar kali ini.",
        "partial.sms": "Sebagian pesanan {tn} telah diantar. {next} Detail: {url}",
        "failed.subject": "Pesanan {tn} belum dapat diantar",
        "failed.heading": "Pesanan Anda belum dapat diantar",
        "failed.intro": "Mohon maaf, kurir kami belum dapat mengantar pesanan Anda.",
        "failed.sms": "Pesanan {tn} gagal diantar: {reason}. {next} {url}",
        "next.redelivery": "Kami sedang mengatur pengiriman ulang untuk barang yang belum"
        " diterima dengan nomor resi baru {tn2}, direncanakan {window2}. Anda akan menerima"
        " konfirmasi setelah jadwalnya pasti.",
        "next.redelivery.sms": "Akan diantar ulang.",
        "next.returned": "Karena pesanan ditolak, barangnya kami bawa kembali ke gudang dan"
        " tidak akan diantar ulang.",
        "next.refund": "Untuk pengembalian dana, hubungi layanan pelanggan kami dengan"
        " menyebutkan nomor resi {tn}.",
        "next.no_charge": "Anda tidak dikenai biaya untuk barang yang dikembalikan.",
        "next.returned.sms": "Barang dikembalikan ke gudang.",
        "next.contact": "Hubungi layanan pelanggan kami dengan menyebutkan nomor resi {tn}"
        " untuk mengatur langkah selanjutnya.",
        "next.contact.sms": "Hubungi layanan pelanggan.",
    },
    "en": {
        "greeting": "Hello {name},",
        "tracking_number": "Tracking number",
        "window": "Delivery window",
        "address": "Delivery address",
        "eta": "Expected arrival",
        "new_eta": "New expected arrival",
        "recipient": "Received by",
        "delivered_at": "Delivered on",
        "attempted_at": "Attempted on",
        "reason": "Reason",
        "delivered_items": "Items received",
        "missing_items": "Items not delivered",
        "damaged": "{n} damaged",
        "link": "Track your order",
        "link_plain": "Track your order here:",
        "footer": "This email was sent automatically by Menara about order {tn}."
        " Please do not reply to it.",
        "confirmed.subject": "Your order {tn} is confirmed",
        "confirmed.heading": "Your order is confirmed",
        "confirmed.intro": "Thank you for your order. We have checked it and will deliver it"
        " in the window below.",
        "confirmed.outro": "We will let you know again when it is on its way.",
        "confirmed.sms": "Your order {tn} is confirmed. Track it: {url}",
        "out_for_delivery.subject": "Your order {tn} is on its way, arriving {short}",
        "out_for_delivery.heading": "Your order is on its way",
        "out_for_delivery.intro": "Your order has left our depot and is on its way to you.",
        "out_for_delivery.outro": "Please make sure someone is there to receive it. The time"
        " may shift with the traffic.",
        "out_for_delivery.sms": "Order {tn} is on its way, arriving {short}. Track: {url}",
        "delayed.subject": "Your delivery {tn} is running late, now arriving {short}",
        "delayed.heading": "Your delivery is running late",
        "delayed.intro": "We are sorry: your delivery is running behind schedule. Here is"
        " the new expected arrival time.",
        "delayed.outro": "We apologise for the inconvenience. You can follow your delivery"
        " with the link below.",
        "delayed.sms": "Sorry, delivery {tn} is running late, now arriving {short}. Track: {url}",
        "delivered.subject": "Your order {tn} has been delivered",
        "delivered.heading": "Your order has been delivered",
        "delivered.intro": "Your order has been delivered. Thank you for shopping with us.",
        "delivered.outro": "Something wrong with this order? Tell us on the tracking page.",
        "delivered.damaged": "Some items were recorded as damaged on delivery.",
        "delivered.sms": "Order {tn} was delivered at {time}. Details: {url}",
        "partial.subject": "Part of your order {tn} has been delivered",
        "partial.heading": "Part of your order has been delivered",
        "partial.intro": "We delivered part of your order; the rest could not be delivered"
        " this time.",
        "partial.sms": "Part of order {tn} was delivered. {next} Details: {url}",
        "failed.subject": "We could not deliver your order {tn}",
        "failed.heading": "We could not deliver your order",
        "failed.intro": "We are sorry: our driver could not deliver your order.",
        "failed.sms": "Order {tn} not delivered: {reason}. {next} {url}",
        "next.redelivery": "We are arranging a new delivery of what is missing under the"
        " tracking number {tn2}, planned for {window2}. You will get a confirmation once it"
        " is scheduled.",
        "next.redelivery.sms": "A new delivery is being arranged.",
        "next.returned": "As the goods were refused, they go back to our depot and will not"
        " be delivered again.",
        "next.refund": "For a refund, contact our customer service quoting the tracking"
        " number {tn}.",
        "next.no_charge": "You are not charged for the goods that go back.",
        "next.returned.sms": "The goods go back to our depot.",
        "next.contact": "Contact our customer service quoting the tracking number {tn} to"
        " arrange what happens next.",
        "next.contact.sms": "Please contact customer service.",
    },
}


@dataclass(frozen=True, slots=True)
class Section:
    """A heading over a list (what was delivered, what was not)."""

    heading: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """One message in one language, ready for the templates and the gateway."""

    language: str
    event: str
    subject: str
    heading: str
    greeting: str
    intro: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    outro: tuple[str, ...]
    link_text: str
    link_plain: str
    link: str
    footer: str
    sms: str


def tracking_url(base_url: str, token: str) -> str:
    """The customer's tracking page."""
    return base_url.rstrip("/") + TRACK_PATH.format(token=token)


def stale(facts: Facts, event: str) -> bool:
    """True when ``event`` is news from before the order's outcome (or cancellation)
    that would now mislead: "on its way" after "delivered"."""
    return event in _BEFORE_OUTCOME and facts.state in OUTCOME_STATES


def _reason(facts: Facts, lang: str) -> str:
    code = facts.reason_code or "other"
    notes = " ".join((facts.proof.notes if facts.proof else "").split())[:_NOTES_MAX]
    if code == "other" and notes:
        return notes
    labels = REASONS.get(code)
    return code if labels is None else labels[1 if lang == "id" else 0]


def _sms_reason(facts: Facts, lang: str) -> str:
    labels = REASONS.get(facts.reason_code or "other", REASONS["other"])
    return (labels[1] if lang == "id" else labels[0]).split(" (")[0]


def _next_steps(facts: Facts, t: Mapping[str, str], tz: tzinfo) -> tuple[list[str], str]:
    """What happens now to what was not delivered: paragraphs and the SMS sentence."""
    tn, lang = facts.tracking_number, facts.language
    if facts.follow_up is not None:
        f = facts.follow_up
        window2 = when.span(f.window_start, f.window_end, lang, tz)
        plan = t["next.redelivery"].format(tn2=f.tracking_number, window2=window2)
        return [plan], t["next.redelivery.sms"]
    if facts.reason_code in NO_REDELIVERY:
        money = t["next.refund"] if facts.payment_state in _PAID else t["next.no_charge"]
        return [t["next.returned"], money.format(tn=tn)], t["next.returned.sms"]
    return [t["next.contact"].format(tn=tn)], t["next.contact.sms"]


def _items(facts: Facts, t: Mapping[str, str]) -> tuple[Section, ...]:
    got, missing = [], []
    for ln in facts.lines:
        delivered = ln.qty if ln.delivered is None else ln.delivered
        if delivered:
            damaged = f", {t['damaged'].format(n=ln.damaged)}" if ln.damaged else ""
            got.append(f"{delivered} × {ln.name}{damaged}")
        if delivered < ln.qty:
            missing.append(f"{ln.qty - delivered} × {ln.name}")
    sections = [Section(t["delivered_items"], tuple(got))] if got else []
    if missing:
        sections.append(Section(t["missing_items"], tuple(missing)))
    return tuple(sections)


@dataclass(slots=True)
class _Parts:
    """What the event adds to the common frame, collected while composing."""

    key: str  # the event's texts, ``partial`` for a partial delivery
    words: dict[str, str]  # fills the subject and SMS
    shown: list[tuple[str, str]] = field(default_factory=list)
    sections: tuple[Section, ...] = ()
    outro: list[str] = field(default_factory=list)


def compose(
    facts: Facts, payload: Mapping[str, Any], *, base_url: str, eta_window_min: int
) -> Message:
    """The message of one outbox row: ``payload`` is what was queued (``event`` and
    what was captured then), ``facts`` the order as it is now."""
    event = str(payload["event"])
    lang = "en" if facts.language == "en" else "id"
    t, tz, tn = T[lang], when.zone(facts.time_zone), facts.tracking_number
    url = tracking_url(base_url, facts.public_token)
    parts = _Parts(event, {"tn": tn, "url": url})
    if event == "confirmed":
        window = when.span(facts.window_start, facts.window_end, lang, tz)
        parts.shown += [(t["window"], window), (t["address"], facts.address)]
        parts.outro = [t["confirmed.outro"]]
    elif event in ("out_for_delivery", "delayed"):
        _on_the_way(parts, facts, payload.get("eta"), eta_window_min, t, tz)
    else:
        _outcome(parts, facts, str(payload.get("state") or ""), t, tz)
    parts.shown.append((t["tracking_number"], tn))
    key = parts.key
    return Message(
        language=lang,
        event=event,
        subject=t[f"{key}.subject"].format(**parts.words),
        heading=t[f"{key}.heading"],
        greeting=t["greeting"].format(name=facts.customer),
        intro=(t[f"{key}.intro"],),
        facts=tuple(parts.shown),
        sections=parts.sections,
        outro=tuple(parts.outro),
        link_text=t["link"],
        link_plain=t["link_plain"],
        link=url,
        footer=t["footer"].format(tn=tn),
        sms=t[f"{key}.sms"].format(**parts.words),
    )


def _on_the_way(
    parts: _Parts, facts: Facts, eta: Any, width_min: int, t: Mapping[str, str], tz: tzinfo
) -> None:
    """Out for delivery / delayed: the window promised around the ETA captured when the
    event happened (the order's own window when there was none)."""
    lang = facts.language
    if eta:
        start, end = when.eta_window(datetime.fromisoformat(str(eta)), width_min)
    else:
        start, end = facts.window_start, facts.window_end
    parts.words["short"] = when.short_span(start, end, lang, tz)
    late = parts.key == "delayed"
    parts.shown.append((t["new_eta" if late else "eta"], when.span(start, end, lang, tz)))
    if not late:
        parts.shown.append((t["address"], facts.address))
    parts.outro = [t[f"{parts.key}.outro"]]


def _outcome(parts: _Parts, facts: Facts, state: str, t: Mapping[str, str], tz: tzinfo) -> None:
    """Delivered (in full or in part) or failed: the ePOD summary and what happens next.
    ``state`` is the outcome captured when it happened."""
    lang, proof = facts.language, facts.proof
    outcome = state or (proof.outcome if proof else parts.key)
    if outcome == "partially_delivered":
        parts.key = "partial"
    delivered = parts.key != "failed"
    if proof is not None and proof.recipient and delivered:
        parts.shown.append((t["recipient"], proof.recipient))
    parts.words["time"] = "-"
    if proof is not None:
        label = t["delivered_at"] if delivered else t["attempted_at"]
        parts.shown.append((label, when.moment(proof.at, lang, tz)))
        parts.words["time"] = when.clock(proof.at.astimezone(tz), lang)
    if delivered:
        parts.sections = _items(facts, t)
    if parts.key == "delivered":
        damaged = any(ln.damaged for ln in facts.lines)
        parts.outro = [*([t["delivered.damaged"]] if damaged else []), t["delivered.outro"]]
        return
    parts.shown.append((t["reason"], _reason(facts, lang)))
    parts.words["reason"] = _sms_reason(facts, lang)
    parts.outro, parts.words["next"] = _next_steps(facts, t, tz)
