"""Generated README sections (settings, protocols, KPI definitions), checked in CI.

``python -m menara.docs --write`` rewrites the marked blocks in README.md; the test
suite fails when README.md differs from what the code says.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from decoders import PROTOCOLS
from menara.service import LISTENER_PORTS, TCP_PORTS, UDP_PORTS
from menara.settings import Settings, describe
from oms_core.reports.definitions import kpi_table

README = Path(__file__).resolve().parent.parent / "README.md"


def settings_table() -> str:
    rows = ["| setting | env var | type | default | what it does |", "|---|---|---|---|---|"]
    for name, typ, default, help_ in describe():
        shown = f"`{default}`" if default != "" else "(empty)"
        rows.append(f"| `{name}` | `MENARA_{name.upper()}` | {typ} | {shown} | {help_} |")
    return "\n".join(rows)


def _transports() -> dict[str, str]:
    d = Settings()
    where = {}
    for name, setting in LISTENER_PORTS.items():
        kind = "TCP" if name in TCP_PORTS else "HTTP"
        where[name] = f"{kind}, `{setting}` (default {getattr(d, setting)})"
    for name, setting in UDP_PORTS.items():
        where[name] += f"; UDP, `{setting}` (default {getattr(d, setting)})"
    where["nmea"] = f"MQTT `{d.mqtt_topic_prefix}/<device>/nmea`"
    where["menara-json"] = f"MQTT `{d.mqtt_topic_prefix}/<device>/json`"
    return where


def protocol_table() -> str:
    rows = ["| protocol | transport | what it is |", "|---|---|---|"]
    where = _transports()
    for name, codec in sorted(PROTOCOLS.items()):
        doc = (getattr(codec, "__doc__", None) or "").strip().splitlines()
        summary = doc[0].replace("``", "`") if doc else ""
        rows.append(f"| `{name}` | {where.get(name, '')} | {summary} |")
    return "\n".join(rows)


SECTIONS = {"settings": settings_table, "protocols": protocol_table, "kpis": kpi_table}


def _replace_block(text: str, name: str, block: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
    return pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text)


def render(text: str) -> str:
    """``text`` with every ``<!-- NAME:start -->…<!-- NAME:end -->`` block regenerated."""
    for name, make in SECTIONS.items():
        text = _replace_block(text, name, make())
    return text


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if "--write" in sys.argv[1:]:
        README.write_text(new, encoding="utf-8")
        return 0
    if new != text:
        print("README.md is out of date: run `python -m menara.docs --write`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
