"""The ``menara`` command: demo, serve, rules, db, admin, simulate, decode, dashboards,
config.

Every sub-command reads the same settings (``--config`` TOML, ``MENARA_*`` env);
flags only override what a user changes per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from decoders import PROTOCOLS
from menara import admin_cmd, dashboards_cmd, logs, redact
from menara import settings as settings_mod
from menara.settings import Settings, SettingsError
from simulators.model import DEVICE_PROTOCOLS


class _Ordered(argparse.Action):
    """Collects ``--hex/--text/--file`` in command-line order as (kind, value)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, "inputs", None) or [])
        items.append((self.dest, str(values)))
        namespace.inputs = items


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="menara", description=__doc__)
    p.add_argument("--config", help="TOML settings file (default: MENARA_CONFIG, if set)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="schema + ingest + simulated fleet, live progress, summary")
    d.add_argument(
        "--duration",
        type=float,
        default=None,
        help="wall seconds the whole planned day is replayed in (default 120; with --speedup:"
        " stop after this long; 60 on the stock routes)",
    )
    d.add_argument(
        "--speedup",
        type=float,
        default=None,
        help="replay the planned day this many times faster than real time (default: the"
        " speed that fits the day into --duration, at least 60)",
    )
    d.add_argument("--vehicles", type=int, default=50, help="simulated vehicles (default 50)")
    d.add_argument("--orders", type=int, default=200, help="orders entered for today")
    d.add_argument(
        "--rate", type=float, default=1.0, help="fixes per second per vehicle (stock routes)"
    )
    d.add_argument(
        "--garbage",
        type=float,
        default=0.002,
        help="share of junk lines sent on the stock routes (default 0.002)",
    )

    sub.add_parser("serve", help="run the ingest service until Ctrl-C")
    sub.add_parser("rules", help="run the rules on rounds published by serve (tower_feed mqtt)")

    db = sub.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="create the database if missing and apply migrations")
    dbsub.add_parser("status", help="schema version, engine and row counts")

    s = sub.add_parser("simulate", help="drive virtual vehicles against a running service")
    s.add_argument("--vehicles", type=int, default=10)
    s.add_argument("--rate", type=float, default=1.0, help="fixes per second per vehicle")
    s.add_argument("--duration", type=float, default=60.0, help="seconds (realtime mode)")
    s.add_argument("--fixes", type=int, default=None, help="stop after N fixes per vehicle")
    s.add_argument("--transport", choices=("mixed", "mqtt", "tcp"), default="mixed")
    s.add_argument("--payload", choices=("nmea", "json"), default="nmea", help="MQTT payload")
    s.add_argument("--qos", type=int, choices=(0, 1), default=1)
    s.add_argument("--fast", action="store_true", help="no real-time pacing (synthetic times)")
    s.add_argument("--geojson", help="LineString routes to drive instead of the Jakarta set")
    s.add_argument("--id-prefix", default="SIM", help="device id prefix (default SIM)")
    s.add_argument(
        "--imei",
        action="store_true",
        help="15-digit IMEI device ids (implied by --protocol teltonika/gt06/h02/gps103)",
    )
    s.add_argument("--seed", type=int, default=1, help="random seed (routes, faults)")
    s.add_argument(
        "--protocol",
        dest="protocols",
        action="append",
        choices=DEVICE_PROTOCOLS,
        help="device protocol of non-MQTT vehicles (repeatable, taken in turn; default t55)",
    )
    for fault in ("duplicate", "garbage", "split", "disconnect", "lose-ack"):
        s.add_argument(f"--{fault}", type=float, default=0.0, help=f"probability of {fault}")

    pl = sub.add_parser("plan", help="plan a day's reserved orders into trips")
    pl.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    pl.add_argument("--depot", type=int, default=None, help="one depot id (default: all)")
    pl.add_argument(
        "--replace",
        action="store_true",
        help="re-plan a day whose trips are all still planned (deletes and replaces them)",
    )

    tk = sub.add_parser("token", help="create or revoke an API token")
    tksub = tk.add_subparsers(dest="token_command", required=True)
    tc = tksub.add_parser("create", help="print a new token's secret (shown only once)")
    tc.add_argument("--name", help="who uses it (recorded in the audit trail); not with --link")
    tc.add_argument(
        "--role", required=True, choices=("dispatcher", "supervisor", "driver", "customer")
    )
    tc.add_argument("--driver-id", type=int, default=None, help="required for --role driver")
    tc.add_argument(
        "--link",
        action="store_true",
        help="--role driver: print a one-time sign-in link for the driver's phone instead"
        " (valid driver_link_ttl_s; the phone gets its own token when it opens it)",
    )
    tr = tksub.add_parser("revoke", help="revoke the token with this secret")
    tr.add_argument("secret")

    dc = sub.add_parser("decode", help="decode captured bytes, print JSON lines")
    dc.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    dc.add_argument("--hex", dest="hex", action=_Ordered, help="hex bytes (repeatable)")
    dc.add_argument("--text", dest="text", action=_Ordered, help="text; \\r\\n escapes allowed")
    dc.add_argument("--file", dest="file", action=_Ordered, help="raw capture file (repeatable)")
    dc.add_argument("--imei", help="device identity when the input has no login frame")

    dashboards_cmd.add_parser(sub)
    admin_cmd.add_parser(sub)

    rp = sub.add_parser("report", help="delivery KPIs, trip history or stop lists for days")
    rp.add_argument(
        "what", nargs="?", default="kpis", choices=("kpis", "trips", "stops"),
        help="kpis (default): every KPI; trips: trip history; stops: stop list",
    )  # fmt: skip
    rp.add_argument("--from", dest="start", required=True, type=date.fromisoformat)
    rp.add_argument("--to", dest="end", type=date.fromisoformat, help="last day (default --from)")
    rp.add_argument("--depot", type=int, default=None, help="one depot id (default: all)")
    rp.add_argument("--by", choices=("day", "depot", "driver", "customer"), default="day")
    rp.add_argument("--format", choices=("table", "csv", "xlsx", "json"), default="table")
    rp.add_argument("--output", type=Path, default=None, help="file (default: stdout)")
    rp.add_argument("--section", help="csv: which section (default: the first)")
    rp.add_argument("--trip", type=int, default=None, help="stops: only this trip's")

    sub.add_parser("config", help="print the effective settings")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = settings_mod.load(args.config)
    except SettingsError as exc:
        print(f"menara: {exc}", file=sys.stderr)
        return 2
    logs.configure(cfg.log_level)
    try:
        return _dispatch(args, cfg)
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, cfg: Settings) -> int:
    if args.command == "config":
        for name, typ, _default, help_ in settings_mod.describe():
            shown = redact.setting(name, getattr(cfg, name))
            print(f"{name} = {json.dumps(shown)}  # {typ}: {help_}")
        return 0
    if args.command == "decode":
        from menara import decode_cmd

        inputs = getattr(args, "inputs", None)
        if not inputs:
            print("menara decode: give at least one --hex, --text or --file", file=sys.stderr)
            return 2
        try:
            return decode_cmd.run(args.protocol, inputs, device_id=args.imei, out=sys.stdout)
        except decode_cmd.InputError as exc:
            print(f"menara decode: {exc}", file=sys.stderr)
            return 2
    if args.command == "db":
        return _db(args.db_command, cfg)
    if args.command == "admin":
        return admin_cmd.run(args, cfg)
    if args.command == "token":
        from menara import token_cmd

        if args.token_command == "revoke":
            return token_cmd.run("revoke", args.secret, "", None, cfg)
        if args.link:
            if args.role != "driver" or args.driver_id is None:
                print("menara token: --link needs --role driver --driver-id N", file=sys.stderr)
                return 2
            return token_cmd.link(args.driver_id, cfg)
        if not args.name:
            print("menara token: give --name (who uses the token)", file=sys.stderr)
            return 2
        return token_cmd.run("create", args.name, args.role, args.driver_id, cfg)
    if args.command == "report":
        from menara import report_cmd

        return report_cmd.run(
            args.what, args.start, args.end, cfg, depot=args.depot, by=args.by,
            fmt=args.format, output=args.output, section=args.section, trip=args.trip,
        )  # fmt: skip
    if args.command == "plan":
        from menara import plan_cmd

        return plan_cmd.run(args.date, args.depot, cfg, replace=args.replace)
    if args.command == "serve":
        from ingest.counters import Counters
        from menara import service

        return service.run_blocking(cfg, Counters())
    if args.command == "rules":
        from ingest.counters import Counters
        from menara import rules_cmd

        return rules_cmd.run_blocking(cfg, Counters())
    if args.command == "simulate":
        from menara import demo

        return asyncio.run(demo.simulate(args, cfg))
    if args.command == "dashboards":
        return dashboards_cmd.run(args)
    if args.command == "demo":
        from menara import demo

        return demo.run(args, cfg)
    raise AssertionError(args.command)


def _db(command: str, cfg: Settings) -> int:
    from menara import db

    try:
        if command == "upgrade":
            created, res = db.ready(cfg)
            print(
                f"database {'created, ' if created else ''}schema at version {res.version}"
                f" (applied {res.applied or 'nothing new'}), engine: "
                f"{'TimescaleDB' if res.timescaledb else 'PostgreSQL (time_bucket shim)'}"
            )
        else:
            db.ensure_database(cfg.db_dsn)
            print(json.dumps(db.status(cfg.db_dsn), indent=2, default=str))
    except db.DatabaseError as exc:
        print(f"menara db: {exc}", file=sys.stderr)
        return 1
    return 0
