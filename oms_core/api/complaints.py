"""Complaints: customers send them from their tracking link, the control room reads them.

``POST /track/{public_token}/complaints`` takes JSON ``{category, text}`` or the
tracking page's multipart form (the same fields and an optional ``photo``); no API
token, the link is the credential. The cheap refusals come first and change nothing:
an unknown link (404, the tracking answer's one body), an order that already has
``MAX_COMPLAINTS`` (429), then the body (415, 413, 422), then the photo, which goes
through the same checks as ePOD images (``uploads.accept_image``: magic bytes,
Pillow, size and pixel caps) so a script named ``.png`` is refused before anything is
stored. The count is checked again under the order's row lock, so two complaints sent
at once cannot make a sixth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core.api.auth import Role
from oms_core.api.context import CTX, read_json, run
from oms_core.api.errors import ApiError, invalid
from oms_core.api.schema_check import FieldProblem, problems_in
from oms_core.api.schemas import MAX_ID
from oms_core.api.schemas_tracking import COMPLAINT_FORM
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params
from oms_core.api.tracking import (
    LANGUAGES,
    MAX_COMPLAINTS,
    TOKEN_PARAM,
    UNKNOWN_LINK,
    complaint_json,
    valid_token,
)
from oms_core.api.uploads import Form, accept_image, read_form
from oms_core.errors import NotFound

__all__ = ["OPERATIONS", "ComplaintIn", "from_form", "read_complaint", "store_complaint"]

Conn = psycopg.Connection[Any]
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_ERR = "Error"
_FIELDS = "SELECT c.id, c.order_id, o.tracking_number, c.category, c.text, c.photo_sha256,"
_FIELDS += " c.state, c.created_at FROM complaints c JOIN orders o ON o.id = c.order_id"


@dataclass(frozen=True, slots=True)
class ComplaintIn:
    """A complaint as the customer sent it, checked: category, text, photo bytes."""

    category: str
    text: str
    photo: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Order:
    id: int
    tracking_number: str
    language: str
    complaints: int


def _too_many() -> ApiError:
    return ApiError(
        429, "too_many_complaints",
        f"this order already has {MAX_COMPLAINTS} complaints, the most a tracking link"
        " takes: we will contact you about them",
    )  # fmt: skip


def _order(conn: Conn, token: str) -> _Order | None:
    row = conn.execute(
        "SELECT o.id, o.tracking_number, c.language,"
        " (SELECT count(*) FROM complaints x WHERE x.order_id = o.id)"
        " FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.public_token = %s",
        (token if valid_token(token) else "",),
    ).fetchone()
    return None if row is None else _Order(int(row[0]), row[1], row[2], int(row[3]))


def _checked(category: Any, text: Any) -> tuple[str, str]:
    """The category and the text with line ends made one character (as the page's
    textarea counts them) and outer blanks gone, or a 422 naming the field."""
    if isinstance(text, str):
        text = text.replace("\r\n", "\n").strip()
    body = {"category": category, "text": text}
    problems = problems_in(body, "ComplaintCreate")
    if problems:
        raise invalid(problems)
    return category, text


def from_form(form: Form) -> ComplaintIn:
    """The complaint in the tracking page's multipart form, or a 422."""
    unknown = sorted(set(form.texts) - {"category", "text"})
    if unknown:
        raise invalid(
            [FieldProblem("unknown_field", f"/{k}", "not category, text or photo") for k in unknown]
        )
    category, text = _checked(form.texts.get("category"), form.texts.get("text"))
    return ComplaintIn(category, text, form.files.get("photo") or None)


async def read_complaint(request: web.Request, max_photo_bytes: int) -> ComplaintIn:
    """The complaint in the request body (JSON or multipart), or an ``ApiError``."""
    if request.content_type == "application/json":
        body = await read_json(request, "ComplaintCreate")
        return ComplaintIn(*_checked(body["category"], body["text"]))
    if request.content_type != "multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type",
            "send JSON {category, text} or a multipart form with category, text and photo",
        )  # fmt: skip
    photo = frozenset({"photo"})
    return from_form(await read_form(request, file_fields=photo, max_bytes=max_photo_bytes))


async def store_complaint(
    request: web.Request,
    token: str,
    read: Callable[[], Awaitable[ComplaintIn]],
    lang: str | None = None,
) -> dict[str, Any]:
    """Check the link and the order's count, then ``read()`` the body, store the photo
    and the complaint; returns the ``ComplaintReceipt`` (labels in ``lang``, default
    the customer's language)."""
    order = await run(request, lambda c: _order(c, token))
    if order is None:
        raise ApiError(404, "not_found", UNKNOWN_LINK)
    if order.complaints >= MAX_COMPLAINTS:
        raise _too_many()
    new = await read()
    photo = None
    if new.photo is not None:
        stored = await accept_image(request, new.photo, f"customer:{order.tracking_number}")
        photo = stored.sha256

    def insert(conn: Conn) -> tuple[datetime, int]:
        with conn.transaction():
            conn.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (order.id,))
            row = conn.execute(
                "SELECT count(*) FROM complaints WHERE order_id = %s", (order.id,)
            ).fetchone()
            count = 0 if row is None else int(row[0])
            if count >= MAX_COMPLAINTS:
                raise _too_many()
            made = conn.execute(
                "INSERT INTO complaints (order_id, category, text, photo_sha256)"
                " VALUES (%s, %s, %s, %s) RETURNING created_at",
                (order.id, new.category, new.text, photo),
            ).fetchone()
            assert made is not None  # INSERT … RETURNING returns the row
            return made[0], count + 1

    at, count = await run(request, insert)
    lang = lang or order.language
    return {
        "complaint": complaint_json(token, lang, new.category, new.text, "open", at, photo),
        "complaints_left": MAX_COMPLAINTS - count,
    }


async def create_complaint(request: web.Request) -> web.Response:
    token = request.match_info["public_token"]
    cap = request.app[CTX].execution.upload_max_bytes
    # A malformed token is refused by the lookup with the one 404, never by the parser.
    lang = (
        parse_params(request, _OPS["createComplaint"]).get("lang") if valid_token(token) else None
    )
    receipt = await store_complaint(request, token, lambda: read_complaint(request, cap), lang)
    headers = {"Location": f"{PREFIX}/track/{token}", "Cache-Control": "no-store"}
    return web.json_response(receipt, status=201, headers=headers)


def _rows(conn: Conn, where: str, params: dict[str, Any], tail: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"{_FIELDS} WHERE {where} {tail}", params).fetchall()
    return [{**r, "created_at": r["created_at"].isoformat()} for r in rows]


async def list_complaints(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listComplaints"])
    since = q.get("since")  # a datetime: parse_params read the date-time
    limit = q.get("limit", 50)
    params = {
        "order_id": q.get("order_id"),
        "since": since,
        "cursor": None if q.get("cursor") is None else int(q["cursor"]),
        "limit": limit + 1,
    }
    where = (
        "(%(order_id)s::bigint IS NULL OR c.order_id = %(order_id)s)"
        " AND (%(since)s::timestamptz IS NULL OR c.created_at >= %(since)s)"
        " AND (%(cursor)s::bigint IS NULL OR c.id < %(cursor)s)"
    )
    rows = await run(
        request, lambda c: _rows(c, where, params, "ORDER BY c.id DESC LIMIT %(limit)s")
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return web.json_response(
        {"complaints": rows, "next_cursor": str(rows[-1]["id"]) if more else None}
    )


async def order_complaints(request: web.Request) -> web.Response:
    oid = parse_params(request, _OPS["orderComplaints"])["id"]

    def read(conn: Conn) -> list[dict[str, Any]]:
        if conn.execute("SELECT 1 FROM orders WHERE id = %s", (oid,)).fetchone() is None:
            raise NotFound(f"no order {oid}")
        return _rows(conn, "c.order_id = %(id)s", {"id": oid}, "ORDER BY c.id")

    return web.json_response({"complaints": await run(request, read)})


_LANG = Param("lang", "query", {"enum": list(LANGUAGES)}, "labels of the receipt in this language")
OPERATIONS = (
    Operation(
        "createComplaint", "POST", "/track/{public_token}/complaints", create_complaint,
        "A complaint about the order of a tracking link (the link's token is the credential)",
        None,
        {201: ("stored, with how many more the order may get", "ComplaintReceipt"),
         404: ("unknown link (the same answer whether or not anything exists)", _ERR),
         413: ("the photo is larger than upload_max_bytes or upload_max_pixels", _ERR),
         415: ("neither JSON nor a multipart form, or the photo is not PNG, JPEG or WebP",
               _ERR),
         422: ("a missing or unknown category, an empty or too long text, a broken photo",
               _ERR),
         429: (f"the order already has {MAX_COMPLAINTS} complaints (too_many_complaints), or"
               " too many requests from this address (rate_limited)", _ERR)},
        body="ComplaintCreate", params=(TOKEN_PARAM, _LANG),
        other_bodies={"multipart/form-data": COMPLAINT_FORM},
        description=f"At most {MAX_COMPLAINTS} complaints per order. The tracking page's"
        " form posts multipart/form-data with an optional photo field.",
    ),
    Operation(
        "listComplaints", "GET", "/complaints", list_complaints,
        "Complaints from customers, newest first", _READ,
        {200: ("one page", "ComplaintPage")},
        params=(
            Param("order_id", "query", _ID, "complaints about this order"),
            Param("since", "query", {"type": "string", "format": "date-time", "maxLength": 64},
                  "complaints made at or after this time (RFC 3339 with an offset)"),
            *PAGE_PARAMS,
        ),
    ),
    Operation(
        "orderComplaints", "GET", "/orders/{id}/complaints", order_complaints,
        "An order's complaints, oldest first", _READ,
        {200: ("the complaints", "ComplaintList"), 404: ("no such order", _ERR)},
        params=(Param("id", "path", _ID, "order id"),),
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
