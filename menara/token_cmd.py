"""``menara token create|revoke``: API tokens for the control room, supervisors and drivers.

The secret is printed once and only its SHA-256 is stored, so a lost token is revoked
and replaced, never recovered. ``--link`` prints a driver's one-time sign-in link
instead: opened on the phone, it signs the driver app in with a token of its own.
"""

from __future__ import annotations

import sys

import psycopg

from menara import db
from menara.settings import Settings
from oms_core.api import create_token, revoke
from oms_core.api.auth import create_sign_in_code
from oms_core.api.driver import sign_in_url
from oms_core.errors import NotFound


def _ready(cfg: Settings) -> None:
    db.ready(cfg)


def link(driver_id: int, cfg: Settings) -> int:
    """Print a one-time sign-in link for driver ``driver_id``."""
    try:
        _ready(cfg)
        with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
            code = create_sign_in_code(conn, driver_id, cfg.driver_link_ttl_s)
    except NotFound:
        print(f"menara token: no driver {driver_id}: check the id (GET /drivers)", file=sys.stderr)
        return 1
    except (db.DatabaseError, psycopg.Error) as exc:
        print(f"menara token: {exc}", file=sys.stderr)
        return 1
    print(sign_in_url(cfg.base_url(), code))
    hours = cfg.driver_link_ttl_s / 3600
    print(
        f"one-time sign-in link for driver {driver_id}, valid {hours:g} h: open it on the"
        " driver's phone (it works once).",
        file=sys.stderr,
    )
    return 0


def run(action: str, value: str, role: str, driver_id: int | None, cfg: Settings) -> int:
    """Create a token named ``value`` or revoke the token whose secret is ``value``."""
    try:
        _ready(cfg)
        with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
            if action == "revoke":
                if not revoke(conn, value):
                    print("menara token: no live token has that secret", file=sys.stderr)
                    return 1
                print("revoked")
                return 0
            secret = create_token(conn, value, role, driver_id)
    except (db.DatabaseError, psycopg.Error) as exc:
        print(f"menara token: {exc}", file=sys.stderr)
        return 1
    print(secret)
    print(
        f"token {value!r} ({role}) created; send it as 'Authorization: Bearer <token>'."
        " It is shown only now.",
        file=sys.stderr,
    )
    return 0
