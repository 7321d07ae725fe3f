"""``decoders.warmup`` compiles what live traffic calls: after it, a fresh interpreter
decoding every simulated tracker dialect (login, position, broken frame) and the NMEA
an MQTT phone sends compiles no further kernel specialisation."""

from __future__ import annotations

import os

import pytest

from decoders import PROTOCOLS
from decoders.warmup import warm_up
from tests.fresh import run_json

SCRIPT = r"""
import json, random
from datetime import UTC, datetime
from decoders import PROTOCOLS, Session
from decoders import _nmea_kernels as nk, _teltonika_kernel as tk
from decoders.warmup import warm_up
from simulators.dialects import DIALECTS
from simulators.vehicle import SimFix

def compiled():
    return [len(nk.decode.signatures), len(tk.decode.signatures)]

warm_up(PROTOCOLS)
before = compiled()
fix = SimFix("359853000144328", datetime(2026, 6, 2, 8, tzinfo=UTC), 52.37, 4.9, 42.0,
             90.0, 3.0, 9, 0.9, True)
rng = random.Random(1)
for name, d in DIALECTS.items():
    codec, session = PROTOCOLS[name], Session()
    for raw in (d.hello(fix.device_id), d.encode(fix, 1), d.junk(rng, fix)):
        if raw:
            frames, _ = codec.split_frames(raw)
            session = codec.decode_frames(frames, session=session).session
PROTOCOLS["nmea"].decode_frames(PROTOCOLS["nmea"].split_frames(fix.nmea())[0], session=Session())
print(json.dumps({"before": before, "after": compiled()}))
"""


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="nothing compiles")
def test_after_the_warm_up_live_traffic_compiles_nothing() -> None:
    seen = run_json(SCRIPT)
    assert min(seen["before"]) >= 1  # both kernels compiled by the warm-up
    assert seen["after"] == seen["before"]


def test_warm_up_decodes_every_protocol_and_names_an_unknown_one() -> None:
    assert warm_up(PROTOCOLS) >= 0.0
    with pytest.raises(KeyError):
        warm_up(["no-such-protocol"])
