"""Times as a customer reads them: in the depot's time zone, with day and month names in
Bahasa Indonesia (``10.30``, the Indonesian way) or English (``10:30``).

An arrival window is promised, never a minute: ``eta_window`` turns an ETA into a window
of quarter hours around it, so a van two minutes late is still inside what was said.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["clock", "day", "eta_window", "moment", "short_span", "span", "zone"]

_QUARTER_S = 15 * 60
_DAYS = {
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
           "September", "Oktober", "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}  # fmt: skip


def eta_window(eta: datetime, width_min: int) -> tuple[datetime, datetime]:
    """The window to promise for ``eta``: ``width_min`` wide (rounded up to whole quarter
    hours, at least one), starting on the quarter hour nearest to ``eta − width/2``.
    Rounding moves the start by at most 7.5 min, less than half the width, so ``eta``
    is always inside."""
    width_s = max(1, math.ceil(width_min / 15)) * _QUARTER_S
    start_s = math.floor((eta.timestamp() - width_s / 2) / _QUARTER_S + 0.5) * _QUARTER_S
    start = datetime.fromtimestamp(start_s, UTC)
    return start, start + timedelta(seconds=width_s)


def zone(name: str) -> tzinfo:
    """The depot's time zone; UTC when its name is not one this machine knows."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _lang(language: str) -> str:
    return "en" if language == "en" else "id"


def day(t: datetime, language: str) -> str:
    """``Selasa, 2 Juni 2026`` / ``Tuesday 2 June 2026`` (``t`` already in local time)."""
    lang = _lang(language)
    name, month = _DAYS[lang][t.weekday()], _MONTHS[lang][t.month - 1]
    return f"{name}{',' if lang == 'id' else ''} {t.day} {month} {t.year}"


def clock(t: datetime, language: str) -> str:
    """``10.30`` / ``10:30``."""
    return f"{t.hour:02d}{'.' if _lang(language) == 'id' else ':'}{t.minute:02d}"


def span(start: datetime, end: datetime, language: str, tz: tzinfo) -> str:
    """``Selasa, 2 Juni 2026, 10.00–13.00 WIB``; a window over midnight names both days."""
    s, e = start.astimezone(tz), end.astimezone(tz)
    if s.date() == e.date():
        return f"{day(s, language)}, {clock(s, language)}–{clock(e, language)} {s.tzname()}"
    return (
        f"{day(s, language)} {clock(s, language)} – {day(e, language)} {clock(e, language)}"
        f" {e.tzname()}"
    )


def short_span(start: datetime, end: datetime, language: str, tz: tzinfo) -> str:
    """``10.00-11.00 WIB``: plain ASCII, for subjects and SMS (an en dash would make an
    SMS Unicode, cutting a segment from 160 characters to 70)."""
    s, e = start.astimezone(tz), end.astimezone(tz)
    return f"{clock(s, language)}-{clock(e, language)} {e.tzname()}"


def moment(t: datetime, language: str, tz: tzinfo) -> str:
    """``Selasa, 2 Juni 2026 pukul 10.12 WIB`` / ``Tuesday 2 June 2026 at 10:12 CEST``."""
    local = t.astimezone(tz)
    at = "pukul" if _lang(language) == "id" else "at"
    return f"{day(local, language)} {at} {clock(local, language)} {local.tzname()}"
