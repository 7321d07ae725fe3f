"""``menara decode``: captured bytes in, one JSON line per fix, reply and reject out.

Sentences are the u-blox examples (u-blox 6 Receiver Description, GPS.G6-SW-10018,
§ RMC and § GGA) with checksums recomputed by our encoder's rule (NMEA 0183 §5.2.1).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from menara.cli import main
from simulators import teltonika_out
from simulators.nmea_out import sentence

RMC = sentence("GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A")
GGA = sentence("GPGGA,083559.00,4717.11437,N,00833.91522,E,1,08,1.01,499.6,M,48.0,M,,")
LOGIN = sentence("PGID,356307042441013")


def decode(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["decode", *args])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_login_then_rmc_and_gga_give_one_merged_fix(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = decode(
        capsys, "--protocol", "t55", "--text", LOGIN.decode(), "--text", (RMC + GGA).decode()
    )
    assert code == 0
    assert len(out) == 1
    fix = out[0]
    assert fix["device_id"] == "356307042441013"
    assert fix["fix_time"] == "2002-12-09T08:35:59Z"
    assert fix["lat"] == pytest.approx(47 + 17.11437 / 60, abs=1e-9)
    assert fix["lon"] == pytest.approx(8 + 33.91522 / 60, abs=1e-9)
    assert (fix["speed_kmh"], fix["course_deg"]) == (0.007408, 77.52)  # 0.004 kn x 1.852
    assert (fix["satellites"], fix["hdop"], fix["altitude_m"]) == (8, 1.01, 499.6)
    assert fix["valid"] is True


def test_hex_pieces_are_one_connection(capsys: pytest.CaptureFixture[str]) -> None:
    """A sentence cut across two --hex arguments is reassembled, as on a TCP stream."""
    whole = LOGIN + RMC
    cut = len(LOGIN) + 20
    _, joined = decode(capsys, "--protocol", "t55", "--hex", whole.hex())
    _, split = decode(
        capsys, "--protocol", "t55", "--hex", whole[:cut].hex(), "--hex", whole[cut:].hex()
    )
    assert split == joined and len(joined) == 1


def test_file_input_and_imei_for_bare_nmea(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(RMC)
    code, out = decode(capsys, "--protocol", "nmea", "--file", str(capture), "--imei", "VAN7")
    assert code == 0 and [f["device_id"] for f in out] == ["VAN7"]


def test_rejects_are_printed_with_their_code(capsys: pytest.CaptureFixture[str]) -> None:
    bad = RMC[:-4] + b"00\r\n"  # wrong checksum
    code, out = decode(capsys, "--protocol", "t55", "--text", LOGIN.decode(), "--hex", bad.hex())
    assert code == 0
    assert out == [
        {
            "reject": {
                "code": "bad_checksum",
                "detail": out[0]["reject"]["detail"],
                "raw": bad.rstrip(b"\r\n").hex(),
            }
        }
    ]


def test_nmea_before_login_is_rejected_not_guessed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = decode(capsys, "--protocol", "t55", "--text", RMC.decode())
    assert code == 0 and out[0]["reject"]["code"] == "no_identity"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--protocol", "nmea"], "give at least one --hex, --text or --file"),
        (["--protocol", "nmea", "--hex", "zz"], "not valid hex"),
        (["--protocol", "nmea", "--file", "/nonexistent/capture.bin"], "no such file"),
    ],
)
def test_bad_usage_exits_2_with_a_message(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["decode", *args]) == 2
    assert message in capsys.readouterr().err


def test_unknown_protocol_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["decode", "--protocol", "nope", "--text", "x"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_teltonika_login_and_packet_print_fixes_and_the_acks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    login = teltonika_out.login("356307042441013")
    packet = teltonika_out.avl_packet(
        [teltonika_out.AvlRecord(time=datetime(2026, 1, 5, 8, 0, tzinfo=UTC), lat=-6.2, lon=106.8)]
    )
    code, out = decode(capsys, "--protocol", "teltonika", "--hex", (login + packet).hex())
    assert code == 0
    assert [o.get("reply") for o in out if "reply" in o] == ["01", "00000001"]
    (fix,) = [o for o in out if "fix_time" in o]
    assert (fix["device_id"], fix["lat"], fix["lon"]) == ("356307042441013", -6.2, 106.8)
    _, cut = decode(capsys, "--protocol", "teltonika", "--hex", (login + packet[:-3]).hex())
    assert cut[-1]["reject"]["code"] == "truncated"
    _, lost = decode(capsys, "--protocol", "teltonika", "--hex", "0000000700000000")
    assert "reject" in lost[0] and lost[0]["reject"]["raw"] == "0000000700000000"
