"""Bulk order import through the API (real sockets and database): CSV and JSON, a report
per row, good orders stored, bad ones refused with reasons and never stored in part."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from oms_core.api import Role
from oms_core.api.imports import CSV_COLUMNS, MAX_ROWS
from tests.oms_core import DEPOT_LAT, DEPOT_LON, NOW
from tests.oms_core.test_api import Api, api_for, order_body

pytestmark = pytest.mark.db
START = (NOW + timedelta(days=1, hours=1)).isoformat()
END = (NOW + timedelta(days=1, hours=4)).isoformat()
PAST = (NOW - timedelta(hours=1)).isoformat()


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def csv_row(api: Api, ref: str, sku: str = "A", qty: str = "1", start: str = START) -> str:
    w = api.world
    cells = [w.customer_id, w.depot_id, '"Damrak 1, Amsterdam"', DEPOT_LAT, DEPOT_LON]
    cells += [start, END, "cod", sku, qty, "10.00", ref]
    return ",".join(str(c) for c in cells)


def post_csv(api: Api, text: str) -> tuple[int, Any]:
    status, _, body = api.call(
        "POST", "/orders/import", data=text.encode(), headers={"Content-Type": "text/csv"}
    )
    return status, body


def order_count(api: Api) -> int:
    with psycopg.connect(api.world.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


def test_csv_import_reports_every_row(api: Api) -> None:
    lines = [
        ",".join(CSV_COLUMNS),
        csv_row(api, "R1", "A", "3"),  # line 2: R1 is one order of two lines
        csv_row(api, "R1", "B", "2"),  # line 3
        csv_row(api, "R2", "NOPE"),  # line 4: unknown SKU
        csv_row(api, "R3", qty="three"),  # line 5: bad number ...
        csv_row(api, "R3"),  # line 6: ... refuses the rest of R3
        csv_row(api, "R4").rsplit(",", 3)[0],  # line 7: cells missing
        csv_row(api, "", start=PAST),  # line 8: window in the past
        csv_row(api, ""),  # line 9: an order by itself
    ]
    status, report = post_csv(api, "\n".join(lines) + "\n")
    assert status == 200
    rows = {r["row"]: r for r in report["rows"]}
    assert sorted(rows) == list(range(2, 10))
    assert (report["created"], report["refused_rows"]) == (2, 5)
    assert rows[2]["ok"] and rows[3]["ok"] and rows[9]["ok"]
    assert rows[2]["order_id"] == rows[3]["order_id"] != rows[9]["order_id"]
    assert rows[2]["external_ref"] == "R1" and rows[9]["external_ref"] is None
    codes = {n: (r["error"] or {}).get("code") for n, r in rows.items() if not r["ok"]}
    assert codes == {
        4: "invalid_order",
        5: "bad_number",
        6: "bad_number",
        7: "missing_column",
        8: "window_in_past",
    }
    assert rows[4]["error"]["details"] == [
        {"code": "unknown_sku", "message": "line 1: SKU 'NOPE' is not sold"}
    ]
    assert "row 5" in rows[6]["error"]["message"]  # says which row sank the order
    assert all(rows[n]["order_id"] is None for n in codes)

    _, _, stored = api.call("GET", f"/orders/{rows[2]['order_id']}", role=Role.SUPERVISOR)
    assert [(ln["sku"], ln["qty"]) for ln in stored["lines"]] == [("A", 3), ("B", 2)]
    assert (stored["state"], stored["payment_method"]) == ("draft", "cod")
    assert order_count(api) == 2


def test_csv_optional_columns_and_conflicting_rows(api: Api) -> None:
    header = ["customer_id", "depot_id", "address", "window_start", "window_end"]
    header += ["sku", "qty", "unit_price", "external_ref"]
    w = api.world
    base = f'{w.customer_id},{w.depot_id},"Damrak 1",{START},{END},A,1,1.00'
    other = f'{w.customer_id},{w.depot_id},"Damrak 2",{START},{END},B,1,1.00'
    status, report = post_csv(api, "\n".join([",".join(header), base + ",X", other + ",X"]))
    assert status == 200
    assert [r["ok"] for r in report["rows"]] == [False, False]
    assert report["rows"][1]["error"]["code"] == "conflicting_rows"
    status, report = post_csv(api, "\n".join([",".join(header), base + ",Y"]))
    order = api.call("GET", f"/orders/{report['rows'][0]['order_id']}")[2]
    assert (order["lat"], order["payment_method"]) == (None, "prepaid")


def test_csv_without_a_required_column_is_refused_whole(api: Api) -> None:
    header = [c for c in CSV_COLUMNS if c != "unit_price"]
    status, err = post_csv(api, ",".join(header) + "\n1,2\n")
    assert (status, err["error"]["code"]) == (422, "missing_field")
    assert [d["field"] for d in err["error"]["details"]] == ["unit_price"]
    assert order_count(api) == 0


def test_json_import(api: Api) -> None:
    good = order_body(api.world)
    body = [good, {**good, "colour": "red"}, {**good, "window_start": PAST}, {"lines": []}]
    status, _, report = api.call("POST", "/orders/import", json=body)
    assert status == 200
    assert [r["row"] for r in report["rows"]] == [0, 1, 2, 3]
    assert [r["ok"] for r in report["rows"]] == [True, False, False, False]
    assert [(r["error"] or {}).get("code") for r in report["rows"]] == [
        None,
        "unknown_field",
        "window_in_past",
        "missing_field",
    ]
    assert report["rows"][1]["error"]["details"][0]["field"] == "/colour"
    assert api.call("GET", f"/orders/{report['rows'][0]['order_id']}")[0] == 200
    assert order_count(api) == 1


def test_import_limits_media_and_roles(api: Api) -> None:
    status, _, err = api.call("POST", "/orders/import", json=[{}] * (MAX_ROWS + 1))
    assert (status, err["error"]["code"]) == (413, "too_many_rows")
    status, _, err = api.call("POST", "/orders/import", json={"orders": []})
    assert (status, err["error"]["code"]) == (422, "wrong_type")
    status, _, err = api.call(
        "POST", "/orders/import", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert (status, err["error"]["code"]) == (415, "unsupported_media_type")
    status, _, err = api.call(
        "POST", "/orders/import", data=b"[1,", headers={"Content-Type": "application/json"}
    )
    assert (status, err["error"]["code"]) == (400, "bad_json")
    status, _, err = api.call(
        "POST", "/orders/import", role=Role.SUPERVISOR, json=[order_body(api.world)]
    )
    assert (status, err["error"]["code"]) == (403, "forbidden")
    assert order_count(api) == 0
