"""``menara admin bootstrap``: the first run of a new installation, without SQL.

It creates the database if missing and applies the migrations (as ``menara db
upgrade``), creates the first dispatcher token unless a live one exists (``--force``
makes another), and prints the addresses to open next. The token's secret is printed
once, on stdout alone, so ``TOKEN=$(menara admin bootstrap)`` captures it; everything
else goes to stderr.
"""

from __future__ import annotations

import argparse
import sys

from menara.settings import Settings

__all__ = ["add_parser", "bootstrap", "run"]

FIRST_TOKEN_NAME = "first dispatcher (admin bootstrap)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``admin`` sub-command and its actions."""
    a = sub.add_parser("admin", help="installation tasks: bootstrap a new installation")
    asub = a.add_subparsers(dest="admin_command", required=True)
    b = asub.add_parser(
        "bootstrap", help="migrate, create the first dispatcher token, print the URLs to open"
    )
    b.add_argument(
        "--force",
        action="store_true",
        help="create a dispatcher token even if a live one exists",
    )
    b.add_argument("--name", default=FIRST_TOKEN_NAME, help="the token's name (audit trail)")


def run(args: argparse.Namespace, cfg: Settings) -> int:
    """Dispatch ``menara admin``."""
    return bootstrap(cfg, force=args.force, name=args.name)


def urls(cfg: Settings) -> list[tuple[str, str]]:
    """(what, where) for everything a new user opens or runs next."""
    base = cfg.base_url()
    where = f"{cfg.local_host(cfg.metrics_host)}:{cfg.metrics_port}"
    metrics = f"http://{where}/metrics" if cfg.metrics_port else "off"
    return [
        ("API", f"{base}/api/v1"),
        ("OpenAPI document", f"{base}/api/v1/openapi.json"),
        ("driver app", f"{base}/driver/"),
        ("customer tracking page", f"{base}/t/<public_token of an order>"),
        ("metrics", metrics),
        ("Grafana dashboards", "menara dashboards export ./grafana-provisioning"),
    ]


def bootstrap(cfg: Settings, *, force: bool = False, name: str = FIRST_TOKEN_NAME) -> int:
    """Migrate, make the first dispatcher token if needed, print where to go; exit code."""
    import psycopg  # here, not at the top: ``menara --help`` should not load the API

    from menara import db
    from oms_core.api import Role, create_token

    err = sys.stderr
    try:
        _, res = db.ready(cfg)
        engine = "TimescaleDB" if res.timescaledb else "PostgreSQL"
        print(f"database ready: schema version {res.version} on {engine}", file=err)
        with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM api_tokens WHERE role = 'dispatcher' AND revoked_at IS NULL"
            ).fetchone()
            live = 0 if row is None else int(row[0])
            secret = None if live and not force else create_token(conn, name, Role.DISPATCHER)
    except (db.DatabaseError, psycopg.Error) as exc:
        print(f"menara admin: {exc}", file=err)
        return 1
    if secret is None:
        print(
            f"{live} dispatcher token(s) exist: none created (--force makes another;"
            " lost tokens: menara token revoke SECRET)",
            file=err,
        )
    else:
        print(secret)
        print(
            f"dispatcher token {name!r} created: send it as 'Authorization: Bearer <token>'."
            " It is shown only now.",
            file=err,
        )
    print("next, start the service (menara serve) and open:", file=err)
    for what, where in urls(cfg):
        print(f"  {what + ':':<24} {where}", file=err)
    return 0
