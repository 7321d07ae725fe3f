"""The customer's tracking page, ``/t/<public_token>``: server-rendered HTML that works
without JavaScript, phone first, in the customer's language (``?lang=id|en``
overrides). A small script refreshes the arrival window and the van every 30 s from
the JSON answer (``GET /api/v1/track/{public_token}``), which holds the same facts.

- ``GET /t/<token>``: the page (``?sent=1`` adds the thank-you after a complaint).
- ``POST /t/<token>/complaint``: the complaint form; stored, it answers 303 back to the
  page (Post/Redirect/Get: reloading does not send it again); refused, the page comes
  back with what to fix and what was typed.
- ``GET /t/<token>/files/<sha256>``: an image of this order's ePOD or complaints.
- ``GET /t/static/<name>``: the stylesheet and the script.

Everything else under ``/t/`` (a wrong token, another order's file) gets one fixed
not-found page, the same bytes whatever was asked.
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import SimpleNamespace as _Ns
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import psycopg
from aiohttp import web
from markupsafe import Markup, escape

from oms_core.api import complaints, pages, tracking
from oms_core.api.context import CTX, run
from oms_core.api.errors import ApiError
from oms_core.api.tracking import TEXTS
from oms_core.api.uploads import Form, read_form
from oms_core.files import SHA256_RE, UploadRefused

__all__ = ["add_routes", "too_many_page"]

_DIR = Path(str(resources.files("oms_core") / "web" / "track"))
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates are package files: no stat per render
)
_ASSETS = {"track.css": "text/css", "track.js": "text/javascript"}
# Content-hashed URLs, so the files can be cached for a day and still change on release.
_ASSET_URL = {
    name: f"/t/static/{name}?v={hashlib.sha256((_DIR / name).read_bytes()).hexdigest()[:12]}"
    for name in _ASSETS
}
_NO_STORE = {"Cache-Control": "no-store"}
_FIXED_TEXT = re.compile(r"\{\{ t\.([a-z_]+) \}\}")  # a text that is the same on every page
_CLOSED = frozenset({"delivered", "partially_delivered", "failed", "completed", "cancelled"})
_TROUBLE = frozenset({"failed", "cancelled"})
_ERROR_KEY = {
    "file_too_large": "photo_size", "too_many_pixels": "photo_size",
    "unsupported_type": "photo_type", "corrupt_image": "photo_corrupt",
    "empty_file": "photo_corrupt", "too_many_complaints": "limit",
}  # fmt: skip


def _headers(**extra: str) -> dict[str, str]:
    return {**pages.PAGE_HEADERS, **_NO_STORE, **extra}


def _render(name: str, **context: Any) -> str:
    return _ENV.get_template(name).render(css=_ASSET_URL["track.css"], **context)


def _baked(name: str, lang: str) -> jinja2.Template:
    """Template ``name`` with this language's fixed texts (``{{ t.key }}``) written in,
    escaped, at start-up: a render then fills in only what differs per order."""
    texts = TEXTS[lang]

    def text(m: re.Match[str]) -> str:
        value = texts[m.group(1)]
        assert isinstance(value, str), m.group(1)
        return "{% raw %}" + str(escape(value)) + "{% endraw %}"

    return _ENV.from_string(_FIXED_TEXT.sub(text, (_DIR / name).read_text("utf-8")))


_PAGES = {lang: _baked("page.html", lang) for lang in tracking.LANGUAGES}


@functools.lru_cache(maxsize=32)
def _options(lang: str, selected: str) -> Markup:
    """The complaint categories as <option>s, ``selected`` chosen (rendered once each)."""
    return Markup(_ENV.get_template("options.html").render(t=TEXTS[lang], selected=selected))


_NOT_FOUND = _render("not_found.html", en=TEXTS["en"], id=TEXTS["id"]).encode()


def _not_found() -> web.Response:
    return web.Response(
        body=_NOT_FOUND, status=404, content_type="text/html", charset="utf-8", headers=_headers()
    )


_TOO_MANY = _render("too_many.html", en=TEXTS["en"], id=TEXTS["id"]).encode()


def too_many_page(request: web.Request, retry_after_s: int) -> web.Response:
    """The short HTML 429 the rate limiter answers pages with."""
    return web.Response(
        body=_TOO_MANY, status=429, content_type="text/html", charset="utf-8",
        headers=_headers(**{"Retry-After": str(retry_after_s)}),
    )  # fmt: skip


def _lang(request: web.Request) -> str | None:
    lang = request.query.get("lang")
    return lang if lang in tracking.LANGUAGES else None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class _Clock:
    """Times and numbers as the customer reads them, in the depot's zone."""

    def __init__(self, t: dict[str, Any], zone: ZoneInfo, now: datetime) -> None:
        self.t, self.zone, self.today = t, zone, now.astimezone(zone).date()

    def local(self, iso: str) -> datetime:
        return datetime.fromisoformat(iso).astimezone(self.zone)

    def hm(self, iso: str) -> str:
        at = self.local(iso)
        return f"{at.hour:02d}{self.t['time_sep']}{at.minute:02d}"

    def date(self, iso: str) -> str:
        at = self.local(iso)
        t = self.t
        return str(t["date"]).format(
            weekday=t["weekdays"][at.weekday()], day=at.day, month=t["months"][at.month - 1]
        )

    def when(self, iso: str) -> str:
        """The time alone today, else with the date."""
        if self.local(iso).date() == self.today:
            return self.hm(iso)
        return str(self.t["date_time"]).format(date=self.date(iso), time=self.hm(iso))

    def span(self, start: str, end: str) -> list[str]:
        """A window as lines: the day, then the hours (or each end with its day)."""
        if self.local(start).date() == self.local(end).date():
            hours = str(self.t["eta_range"]).format(start=self.hm(start), end=self.hm(end))
            return [self.date(start), hours]
        return [f"{self.when(start)} –", self.when(end)]

    def amount(self, text: str) -> str:
        whole, _, cents = text.partition(".")
        grouped = f"{int(whole):,}"
        if self.t["decimal_sep"] == ",":
            grouped = grouped.replace(",", ".")
        return grouped + (self.t["decimal_sep"] + cents if cents else "")

    def distance(self, metres: float) -> str:
        if metres < 1000:
            return f"{max(10, round(metres, -1)):.0f} m"
        return f"{metres / 1000:.1f} km".replace(".", self.t["decimal_sep"])


def _view(d: dict[str, Any], c: _Clock) -> _Ns:
    """Display strings the template places; the template decides nothing but layout.
    Objects with attributes, not dicts: a template reads them without a failed lookup."""
    t, eta, vehicle, epod = c.t, d["eta"], d["vehicle"], d["epod"]
    stops, state = d["stops_before"], d["state"]
    return _Ns(
        kind="trouble" if state in _TROUBLE else "done" if state in _CLOSED else "moving",
        window=c.span(d["window_start"], d["window_end"]),
        amount=c.amount(d["total_amount"]),
        eta=None if eta is None else _Ns(
            title=t["eta_today"] if c.local(eta["window_start"]).date() == c.today
            else str(t["eta_day"]).format(date=c.date(eta["window_start"])),
            range=str(t["eta_range"]).format(
                start=c.hm(eta["window_start"]), end=c.hm(eta["window_end"])),
            note=t["eta_live"] if eta["live"] else t["eta_planned"],
        ),
        vehicle=None if vehicle is None else _Ns(
            away=None if vehicle["distance_m"] is None else str(t["vehicle_away"]).format(
                distance=c.distance(vehicle["distance_m"])),
            seen=str(t["vehicle_seen"]).format(time=c.hm(vehicle["at"])),
            map_url=vehicle["map_url"],
        ),
        stops_before=None if not stops else t["stops_before"][
            "one" if stops == 1 else "other"].format(n=stops),
        timeline=[_Ns(label=s["label"], when=None if s["at"] is None else c.when(s["at"]),
                      cls=f"step {'done' if s['done'] else 'ahead'} step-{s['step']}")
                  for s in d["timeline"]],
        epod=None if epod is None else _Ns(
            **{**epod, "lines": [_Ns(name=ln["name"], qty=str(t["delivered_of"]).format(
                delivered=ln["delivered_qty"], qty=ln["qty"])) for ln in epod["lines"]]},
            when=c.when(epod["at"]),
        ),
        complaints=[_Ns(**x, when=c.when(x["created_at"])) for x in d["complaints"]],
        shape="|".join((state, "1" if vehicle else "0", "1" if epod else "0",
                        "1" if d["notice"] else "0", "" if stops is None else str(stops))),
    )  # fmt: skip


def _html(
    d: dict[str, Any],
    token: str,
    *,
    lang: str | None,
    now: datetime,
    sent: bool = False,
    form: dict[str, str] | None = None,
    refusal: str | None = None,
) -> str:
    """The page for the answer ``d`` (``lang``: the language the link asked for;
    ``refusal``: why the complaint in ``form`` was not taken, a key of the texts'
    ``complaint_error`` or ``limit``)."""
    t = TEXTS[d["language"]]
    error = None
    if refusal is not None:
        error = t["complaint_limit"] if refusal == "limit" else t["complaint_error"][refusal]
    clock = _Clock(t, _zone(d["time_zone"]), now)
    query = f"?lang={lang}" if lang else ""
    typed = form or {"category": "", "text": ""}
    chosen = typed["category"] if typed["category"] in t["category"] else ""
    return _PAGES[d["language"]].render(
        css=_ASSET_URL["track.css"], js=_ASSET_URL["track.js"], t=t, d=_Ns(**d),
        v=_view(d, clock), other="en" if d["language"] == "id" else "id",
        page_url=f"/t/{token}{query}", action=f"/t/{token}/complaint{query}#complaint",
        sent=sent and error is None, form=_Ns(**typed), error=error,
        options=_options(d["language"], chosen),
        updated=str(t["updated"]).format(time=clock.hm(now.isoformat())),
    )  # fmt: skip


async def _page(request: web.Request, token: str, status: int = 200, **extra: Any) -> web.Response:
    """Look the order up and render its page; the not-found page for an unknown token.
    The page is rendered after the connection went back to the pool: a connection held
    while Python renders is one fewer for the other requests."""
    ctx, lang = request.app[CTX], _lang(request)
    now, window = ctx.now(), ctx.execution.eta_window_min
    row = await run(request, lambda conn: tracking.fetch(conn, token, now))
    if row is None:
        return _not_found()
    d = tracking.shape(row, token, lang=lang, window_min=window)
    body = _html(d, token, lang=lang, now=now, **extra)
    return web.Response(text=body, status=status, content_type="text/html", headers=_headers())


async def _show(request: web.Request) -> web.StreamResponse:
    return await _page(request, request.match_info["token"], sent=request.query.get("sent") == "1")


def _error_key(exc: ApiError | UploadRefused) -> str:
    if exc.code in _ERROR_KEY:
        return _ERROR_KEY[exc.code]
    fields = {str(p.get("field", "")).lstrip("/") for p in getattr(exc, "details", [])}
    return next((f for f in ("category", "text") if f in fields), "other")


async def _complain(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    cap = request.app[CTX].execution.upload_max_bytes
    typed: dict[str, str] = {}

    async def read() -> complaints.ComplaintIn:
        form: Form = await read_form(request, file_fields=frozenset({"photo"}), max_bytes=cap)
        typed.update({k: form.texts.get(k, "") for k in ("category", "text")})
        return complaints.from_form(form)

    lang = _lang(request)
    try:
        await complaints.store_complaint(request, token, read, lang)
    except (ApiError, UploadRefused) as exc:
        if exc.status == 404:
            return _not_found()
        return await _page(request, token, exc.status, form=typed, refusal=_error_key(exc))
    query = "sent=1" + (f"&lang={lang}" if lang else "")
    raise web.HTTPSeeOther(f"/t/{token}?{query}#complaint")


def _owned_file(conn: psycopg.Connection[Any], token: str, sha256: str) -> str | None:
    """The media type of ``sha256`` if it belongs to the ePOD or a complaint of the
    order of ``token``; None for anything else."""
    row = conn.execute(
        "SELECT f.media_type FROM orders o, files f"
        " WHERE o.public_token = %(token)s AND f.sha256 = %(sha)s AND ("
        " EXISTS (SELECT 1 FROM epods e WHERE e.order_id = o.id"
        "         AND e.signature_sha256 = f.sha256)"
        " OR EXISTS (SELECT 1 FROM epods e JOIN epod_photos p ON p.epod_id = e.id"
        "            WHERE e.order_id = o.id AND p.sha256 = f.sha256)"
        " OR EXISTS (SELECT 1 FROM complaints c WHERE c.order_id = o.id"
        "            AND c.photo_sha256 = f.sha256))",
        {"token": token if tracking.valid_token(token) else "",
         "sha": sha256 if SHA256_RE.fullmatch(sha256) else ""},
    ).fetchone()  # fmt: skip
    return None if row is None else str(row[0])


async def _file(request: web.Request) -> web.StreamResponse:
    token, sha = request.match_info["token"], request.match_info["sha256"]
    media = await run(request, lambda conn: _owned_file(conn, token, sha))
    path = request.app[CTX].execution.files.path(sha) if media else None
    if path is None or not path.is_file():
        return _not_found()
    headers = _headers(**{"Content-Type": media or "", "Content-Disposition": "inline"})
    return web.FileResponse(path, headers=headers)


async def _asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _ASSETS:
        return _not_found()
    headers = {"Content-Type": _ASSETS[name], "Cache-Control": "public, max-age=86400",
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    return web.FileResponse(_DIR / name, headers=headers)


async def _form_again(request: web.Request) -> web.StreamResponse:
    """A GET of the form's address (typed, or from history) lands on the page's form."""
    token = request.match_info["token"]
    if not tracking.valid_token(token):
        return _not_found()
    query = f"?lang={request.query['lang']}" if _lang(request) else ""
    raise web.HTTPSeeOther(f"/t/{token}{query}#complaint")


async def _anything_else(request: web.Request) -> web.StreamResponse:
    return _not_found()


def add_routes(app: web.Application) -> None:
    """Register the tracking page's routes on ``app`` (the catch-all last)."""
    app.router.add_get("/t/static/{name}", _asset, name="track_static")
    app.router.add_get("/t/{token}", _show, name="track_page")
    app.router.add_post("/t/{token}/complaint", _complain, name="track_complaint")
    app.router.add_get("/t/{token}/complaint", _form_again, name="track_complaint_form")
    app.router.add_get("/t/{token}/files/{sha256}", _file, name="track_file")
    app.router.add_route("*", "/t/{tail:.*}", _anything_else, name="track_not_found")
