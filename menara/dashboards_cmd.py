"""``menara dashboards export|publish``: Grafana provisioning files, or a push over the API.

The dashboards package is imported only when the command runs: building the parser stays
cheap for every other ``menara`` command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dashboards.provisioning import DatasourceOptions


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``dashboards`` sub-command and its two verbs."""
    d = sub.add_parser("dashboards", help="Grafana dashboards: export provisioning, publish")
    dsub = d.add_subparsers(dest="dashboards_command", required=True)
    ex = dsub.add_parser("export", help="write Grafana provisioning files into DIR")
    ex.add_argument("dir", type=Path, help="e.g. deploy/grafana/provisioning")
    pb = dsub.add_parser("publish", help="create or update folder, data source and dashboards")
    pb.add_argument("--url", required=True, help="Grafana's address, e.g. http://localhost:3000")
    pb.add_argument(
        "--token",
        default=os.environ.get("GRAFANA_TOKEN"),
        help="service account token with the Admin role (default: GRAFANA_TOKEN)",
    )
    for p, password_help in (
        (ex, "written as is, Grafana expands $NAME (default $MENARA_DB_PASSWORD)"),
        (pb, "sent to Grafana (default: MENARA_DB_PASSWORD; unset keeps Grafana's)"),
    ):
        p.add_argument("--db-host", help="host:port as Grafana sees it (timescaledb:5432)")
        p.add_argument("--db-name", help="database name (menara)")
        p.add_argument("--db-user", help="database user (postgres)")
        p.add_argument("--db-password", help=password_help)


def _options(args: argparse.Namespace, password: str | None) -> DatasourceOptions:
    from dashboards.provisioning import DatasourceOptions

    d = DatasourceOptions()
    return DatasourceOptions(
        host=args.db_host or d.host,
        database=args.db_name or d.database,
        user=args.db_user or d.user,
        password=d.password if password is None else password,
    )


def run(args: argparse.Namespace) -> int:
    from dashboards.provisioning import export
    from dashboards.publish import PublishError, publish

    if args.dashboards_command == "export":
        for path in export(args.dir, _options(args, args.db_password)):
            print(f"wrote {path}")
        return 0
    if not args.token:
        print("menara dashboards publish: give --token (or set GRAFANA_TOKEN)", file=sys.stderr)
        return 2
    password = args.db_password
    if password is None:
        password = os.environ.get("MENARA_DB_PASSWORD", "")
    try:
        publish(args.url, args.token, _options(args, password))
    except PublishError as exc:
        print(f"menara dashboards publish: {exc}", file=sys.stderr)
        return 1
    return 0
