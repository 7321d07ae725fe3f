"""Bulk order import: a JSON array of orders or a CSV file, answered row by row.

Each order is checked and stored on its own (its own transaction), so good orders are
created and bad ones refused with their reasons in the same call. An order is never
stored in part: in CSV, rows sharing an ``external_ref`` are one order, and one bad row
refuses the whole order (each of its rows says why). A window that has already started
is refused here rather than left to verification: such a draft could never be verified.
With a geocoder configured, an order without coordinates (or a stored address) is
geocoded first; an address it cannot place refuses that order, like any bad row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from aiohttp import web

from oms_core import orders
from oms_core.api.auth import Role
from oms_core.api.context import CTX, PRINCIPAL, load_json, run
from oms_core.api.errors import ApiError
from oms_core.api.orders import needs_geocoding, order_in
from oms_core.api.schema_check import problems_in
from oms_core.api.spec import Operation
from oms_core.errors import InvalidOrder, OmsError
from oms_core.geocode import GeocodeError, Geocoder
from oms_core.model import OrderIn

__all__ = ["CSV_COLUMNS", "MAX_ROWS", "OPERATIONS"]

MAX_ROWS = 5_000  # one import is one request; bigger files go in several calls
CSV_COLUMNS = (
    "customer_id", "depot_id", "address", "lat", "lon", "window_start", "window_end",
    "payment_method", "sku", "qty", "unit_price", "external_ref",
)  # fmt: skip
_OPTIONAL = frozenset({"lat", "lon", "payment_method", "external_ref"})
_INTS = ("customer_id", "depot_id", "qty")
_FLOATS = ("lat", "lon")
Conn = psycopg.Connection[Any]
Error = dict[str, Any]


@dataclass
class _Order:
    """One order to store: the rows it came from, its body, or why it is refused."""

    rows: list[int]
    external_ref: str | None
    body: dict[str, Any]
    error: Error | None = None


def _err(code: str, message: str, details: Sequence[dict[str, Any]] = ()) -> Error:
    return {"code": code, "message": message, "details": list(details)}


def _schema_error(body: Any) -> Error | None:
    problems = problems_in(body, "OrderCreate")
    if not problems:
        return None
    details = [{"code": p.code, "field": p.field, "message": p.message} for p in problems]
    return _err(problems[0].code, "the order does not match OrderCreate: fix the fields", details)


def _from_json(raw: bytes) -> list[_Order]:
    items = load_json(raw)
    if not isinstance(items, list):
        raise ApiError(422, "wrong_type", "send a JSON array of orders (or text/csv)")
    _cap(len(items))
    return [_Order([i], None, item, _schema_error(item)) for i, item in enumerate(items)]


def _cap(rows: int) -> None:
    if rows > MAX_ROWS:
        raise ApiError(
            413, "too_many_rows", f"{rows} rows; one import takes ≤ {MAX_ROWS}: split the file"
        )


def _cell(row: dict[str, str | None], name: str) -> tuple[Any, Error | None]:
    text = (row.get(name) or "").strip()
    if not text:
        return None, None
    if name in _INTS or name in _FLOATS:
        try:
            return (int(text) if name in _INTS else float(text)), None
        except ValueError:
            return None, _err("bad_number", f"column {name}: {text!r} is not a number")
    return text, None


def _row_to_order(
    row: dict[str, str | None],
) -> tuple[dict[str, Any], dict[str, Any], Error | None]:
    """(order fields, line) of one CSV row, or the first reason it cannot be read."""
    if None in row.values() or None in row:
        return {}, {}, _err("missing_column", "the row has fewer or more cells than the header")
    cells: dict[str, Any] = {}
    for name in CSV_COLUMNS:
        value, error = _cell(row, name)
        if error is not None:
            return {}, {}, error
        if value is None and name not in _OPTIONAL:
            return {}, {}, _err("missing_value", f"column {name} is empty")
        cells[name] = value
    order = {
        "customer_id": cells["customer_id"],
        "depot_id": cells["depot_id"],
        "address_text": cells["address"],
        "lat": cells["lat"],
        "lon": cells["lon"],
        "window_start": cells["window_start"],
        "window_end": cells["window_end"],
        "payment_method": cells["payment_method"] or "prepaid",
    }
    line = {"sku": cells["sku"], "qty": cells["qty"], "unit_price": cells["unit_price"]}
    return order, line, None


def _from_csv(raw: bytes) -> list[_Order]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "bad_csv", f"the CSV is not UTF-8: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in CSV_COLUMNS if c not in header and c not in _OPTIONAL]
    if missing:
        raise ApiError(
            422,
            "missing_field",
            f"the CSV header lacks columns: {', '.join(missing)}",
            [
                {"code": "missing_field", "field": c, "message": "column is required"}
                for c in missing
            ],
        )
    rows = [(reader.line_num, r) for r in reader]
    _cap(len(rows))
    return _group(rows)


def _group(rows: list[tuple[int, dict[str, str | None]]]) -> list[_Order]:
    """Rows with the same external_ref become one order with several lines."""
    by_ref: dict[str, _Order] = {}
    found: list[_Order] = []
    for line_no, row in rows:
        fields, line, error = _row_to_order(row)
        ref = (row.get("external_ref") or "").strip() or None
        group = by_ref.get(ref) if ref is not None else None
        if group is None:
            group = _Order([], ref, {**fields, "lines": []})
            found.append(group)
            if ref is not None:
                by_ref[ref] = group
        elif error is None and any(group.body.get(k) != v for k, v in fields.items()):
            error = _err(
                "conflicting_rows",
                f"row {line_no} repeats external_ref {ref} with other order fields",
            )
        group.rows.append(line_no)
        group.body["lines"].append(line)
        if error is not None and group.error is None:
            group.error = {**error, "message": f"row {line_no}: {error['message']}"}
    for group in found:
        if group.error is None:
            group.body = {k: v for k, v in group.body.items() if v is not None}
            group.error = _schema_error(group.body)
    return found


def _locate(geocoder: Geocoder | None, new: OrderIn, seen: dict[str, Any]) -> OrderIn | Error:
    """The order with coordinates from the geocoder when it needs them and one is set
    (each distinct address asked once per import), or the refusal as a report error."""
    if geocoder is None or not needs_geocoding(new):
        return new
    text = new.address_text
    if text not in seen:
        try:
            seen[text] = geocoder.geocode(text)
        except GeocodeError as exc:
            seen[text] = _err(exc.code, str(exc))
    found = seen[text]
    if isinstance(found, dict):
        return found
    return replace(new, lat=found[0], lon=found[1])


def _store(
    conn: Conn, todo: list[_Order], now: datetime, actor: str, geocoder: Geocoder | None
) -> list[dict[str, Any]]:
    report: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}
    for order in todo:
        order_id: int | None = None
        if order.error is None:
            new = order_in(order.body)
            located = _locate(geocoder, new, seen) if new.window_start > now else None
            if located is None:
                order.error = _err("window_in_past", "the delivery window has already started")
            elif isinstance(located, dict):
                order.error = located
            else:
                try:
                    order_id = orders.create_order(conn, located, actor=actor).id
                except InvalidOrder as exc:
                    problems = [{"code": p.code, "message": p.message} for p in exc.problems]
                    order.error = _err(exc.code, str(exc), problems)
                except (OmsError, psycopg.IntegrityError) as exc:
                    order.error = _err("refused", f"the order could not be stored: {exc}")
        for row in order.rows:
            report.append(
                {
                    "row": row,
                    "ok": order.error is None,
                    "order_id": order_id,
                    "external_ref": order.external_ref,
                    "error": order.error,
                }
            )
    return sorted(report, key=lambda r: int(r["row"]))


async def import_orders(request: web.Request) -> web.Response:
    media = request.content_type
    if media not in ("application/json", "text/csv"):
        raise ApiError(
            415, "unsupported_media_type", "send application/json (an array) or text/csv"
        )
    raw = await request.read()  # raises 413 past the app's client_max_size
    todo = _from_json(raw) if media == "application/json" else _from_csv(raw)
    ctx, actor = request.app[CTX], request[PRINCIPAL].name
    now = ctx.now()
    rows = await run(request, lambda c: _store(c, todo, now, actor, ctx.geocoder))
    created = len({r["order_id"] for r in rows if r["ok"]})
    refused = sum(1 for r in rows if not r["ok"])
    return web.json_response({"created": created, "refused_rows": refused, "rows": rows})


_CSV_HELP = (
    "JSON: an array of OrderCreate objects; `row` in the report is the array index."
    " CSV (text/csv, UTF-8, header line first): columns "
    + ", ".join(CSV_COLUMNS)
    + ". lat, lon, payment_method (prepaid | cod; default prepaid) and external_ref may be"
    " empty or left out; times are RFC 3339 with an offset. Rows with the same external_ref"
    " are one order with one line each; a row without one is an order by itself."
    " `row` in the report is the CSV line number (the header is line 1)."
    f" At most {MAX_ROWS} rows (413). Good orders are stored, bad ones refused with a reason"
    " on each of their rows; an order is never stored in part."
)
OPERATIONS = (
    Operation(
        "importOrders", "POST", "/orders/import", import_orders,
        "Enter many draft orders at once, with a report per row",
        frozenset({Role.DISPATCHER}),
        {200: ("one report row per input row", "ImportReport"),
         413: (f"more than {MAX_ROWS} rows, or the body is too large", "Error")},
        body="OrderImport", description=_CSV_HELP,
        other_bodies={"text/csv": {"type": "string"}},
    ),
)  # fmt: skip
