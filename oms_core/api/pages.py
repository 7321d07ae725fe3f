"""The pages people open in a browser, beside the API: the driver app at ``/driver/``
and the customer's tracking page at ``/t/<public_token>``.

Pages get a strict Content Security Policy (scripts, styles and connections only from
this origin; images also as data: and blob: URLs, which the signature pad and photo
previews use), are never framed, and send no Referer (the tracking link is a secret).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from oms_core.api import track_page

__all__ = ["PAGE_HEADERS", "add_pages"]

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:;"
    " style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none';"
    " base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_WEB = Path(str(resources.files("oms_core") / "web"))


async def _driver_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_WEB / "driver" / "index.html", headers=PAGE_HEADERS)


async def _driver_redirect(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/driver/")


def add_pages(app: web.Application) -> None:
    """Register the pages' routes on ``app``."""
    app.router.add_get("/driver", _driver_redirect)
    app.router.add_get("/driver/", _driver_index, name="driver_page")
    app.router.add_static("/driver/", _WEB / "driver", name="driver_static")
    track_page.add_routes(app)
