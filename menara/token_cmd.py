"""``menara token create|revoke``: API tokens for the control room, supervisors and drivers.

The secret is printed once and only its SHA-256 is stored, so a lost token is revoked
and replaced, never recovered.
"""

from __future__ import annotations

import sys

import psycopg

from menara import db
from menara.settings import Settings
from oms_core.api import create_token, revoke


def run(action: str, value: str, role: str, driver_id: int | None, cfg: Settings) -> int:
    """Create a token named ``value`` or revoke the token whose secret is ``value``."""
    try:
        db.ensure_database(cfg.db_dsn)
        db.upgrade(cfg.db_dsn, timescale=cfg.timescale, compress_after=cfg.compress_after)
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
