"""The OMS REST API (aiohttp, ``/api/v1``, JSON) over the order core.

    pool = ConnectionPool(dsn, kwargs={"autocommit": True})
    with pool.connection() as conn:
        token = create_token(conn, "control room", "dispatcher")  # shown once
    web.run_app(make_app(pool), port=8080)
    # curl -H "Authorization: Bearer $token" localhost:8080/api/v1/orders

The OpenAPI 3.1 document is served at ``/api/v1/openapi.json`` without a token.
"""

from oms_core.api.app import make_app, utc_now
from oms_core.api.auth import Principal, Role, create_token, revoke

__all__ = ["Principal", "Role", "create_token", "make_app", "revoke", "utc_now"]
