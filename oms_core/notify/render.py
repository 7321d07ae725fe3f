"""A composed ``Message`` as the receiver takes it: a multipart/alternative email (plain
text and HTML from the jinja2 templates beside this module, HTML autoescaped), or the
JSON body of a gateway webhook.

The email's Message-ID is derived from the outbox row, so the resend of an at-least-once
delivery carries the same id and mail systems can drop the duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import jinja2

from oms_core.notify.texts import Message

__all__ = ["email", "gateway_body", "message_id"]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def message_id(delivery_id: int, sender: str) -> str:
    """``<menara-delivery-<id>@<sender's domain>>``: one id per outbox row."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<menara-delivery-{delivery_id}@{domain}>"


def email(message: Message, *, sender: str, to: str, delivery_id: int) -> EmailMessage:
    """The email of ``message``: text first, HTML as the richer alternative."""
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, to
    msg["Subject"] = message.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id(delivery_id, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg.set_content(_ENV.get_template("email.txt").render(m=message))
    msg.add_alternative(_ENV.get_template("email.html").render(m=message), subtype="html")
    msg["Content-Language"] = message.language  # after the parts: set_content drops it
    return msg


def gateway_body(
    message: Message, payload: Mapping[str, Any], tracking_number: str
) -> dict[str, Any]:
    """What an SMS / WhatsApp gateway gets: who to send what to, in which language."""
    return {
        "event": message.event,
        "medium": payload["medium"],
        "to": payload["to"],
        "language": message.language,
        "text": message.sms,
        "tracking_number": tracking_number,
        "tracking_url": message.link,
    }
