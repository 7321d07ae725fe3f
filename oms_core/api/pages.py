"""The pages people open in a browser, beside the API: the driver app at ``/driver/``
and the customer's tracking page at ``/t/<public_token>``.

Pages and the driver app's files get a strict Content Security Policy (scripts, styles
and connections only from this origin; images also as data: and blob: URLs, which the
signature pad and photo previews use), are never framed, and send no Referer (the
tracking link is a secret). The driver app's files are revalidated on every load
(``no-cache``): its service worker keeps them for offline use, and a phone must not run
yesterday's script against today's API.
"""

from __future__ import annotations

import re
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
_DRIVER_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "json": "application/manifest+json",  # the one JSON file there is the app manifest
}
_DRIVER_FILE = re.compile(r"[a-z0-9_-]{1,40}\.(html|js|css|svg|json)")


def _driver(name: str, kind: str) -> web.FileResponse:
    headers = {**PAGE_HEADERS, "Content-Type": _DRIVER_TYPES[kind], "Cache-Control": "no-cache"}
    return web.FileResponse(_WEB / "driver" / name, headers=headers)


async def _driver_index(request: web.Request) -> web.FileResponse:
    return _driver("index.html", "html")


async def _driver_file(request: web.Request) -> web.FileResponse:
    """One of the app's own files by plain name: no paths, no other types."""
    name = request.match_info["name"]
    found = _DRIVER_FILE.fullmatch(name)
    if found is None or not (_WEB / "driver" / name).is_file():
        raise web.HTTPNotFound()
    return _driver(name, found.group(1))


async def _driver_redirect(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/driver/")


def add_pages(app: web.Application) -> None:
    """Register the pages' routes on ``app``."""
    app.router.add_get("/driver", _driver_redirect)
    app.router.add_get("/driver/", _driver_index, name="driver_page")
    app.router.add_get("/driver/{name}", _driver_file, name="driver_file")
    track_page.add_routes(app)
