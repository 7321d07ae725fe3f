"""The OsmAnd JSON body (Traccar Client 9+) with lone surrogates and deep nesting: each is
a counted reject (or, inside optional fields, dropped) and never a 500 or a stored
string PostgreSQL cannot hold."""

from __future__ import annotations

import json
from datetime import timedelta

import aiohttp
import pytest

from simulators.osmand_out import json_body
from tests.ingest.test_http import T0, letters, rig, rows, run

pytestmark = pytest.mark.db


def body(device: str, i: int, **changes: object) -> bytes:
    doc = json.loads(json_body(device, time=T0 + timedelta(seconds=i), lat=-6.2, lon=106.8))
    doc["location"].update(changes)
    return json.dumps(doc).encode()  # ensure_ascii: a surrogate goes out as \udXXX


def test_surrogates_and_deep_nesting_are_counted_rejects(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db) as r, aiohttp.ClientSession() as phone:

            async def post(raw: bytes) -> tuple[int, str]:
                async with phone.post(r.url, data=raw) as resp:
                    return resp.status, await resp.text()

            who = json.dumps({"device_id": "PH\ud800"}).encode()
            assert (await post(who))[0] == 400
            deep = b"[" * 2000 + b"]" * 2000  # past the recursion limit, within the 4 KiB cap
            status, text = await post(b'{"location": ' + deep + b"}")
            assert (status, text.split(":")[0]) == (400, "bad_json")
            status, text = await post(body("PH1", 0, timestamp="2026-01-05T08:00:00\udc00Z"))
            assert status == 400, text
            # In optional fields the bad text is left out and the fix kept.
            extras = {"note\ud800": 1, "ok": "a\udfffb"}
            odd = body("PH1", 1, activity={"type": "\ud800"}, event="\ud800", extras=extras)
            assert (await post(odd))[0] == 200
            assert r.counters.get("rejects", protocol="osmand", code="bad_json") == 1
            assert r.counters.get("rejects", protocol="osmand") == 3

    run(main())
    assert len(rows(clean_db, "PH1")) == 1
    assert [reason for reason, *_ in letters(clean_db)] == ["bad_identity", "bad_json", "bad_date"]
