"""The customer's tracking page, ``/t/<public_token>`` (HTML; the JSON is
``GET /api/v1/track/{public_token}``)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    """Register the tracking page's routes on ``app``."""
