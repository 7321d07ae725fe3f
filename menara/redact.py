"""Settings as people may see them: passwords masked, also inside the database DSN.

``menara config`` output and start-up messages get pasted into tickets and chats; the
DSN may carry its password in URL form (``postgresql://user:secret@host/db``, or
``?password=secret``) or key=value form (``password=secret``, quoted or not).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "dsn", "setting"]

MASK = "********"
_URL_USERINFO = re.compile(r"^(?P<head>[a-z][a-z0-9+.-]*://[^/?#@:]*:)[^/?#@]*(?=@)", re.I)
_URL_QUERY = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.I)
_KEY_VALUE = re.compile(r"(?P<head>(?:^|\s)password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s']\S*)", re.I)


def dsn(text: str) -> str:
    """``text`` (a libpq connection string or URL) with any password replaced by MASK."""
    if "://" in text:
        text = _URL_USERINFO.sub(rf"\g<head>{MASK}", text, count=1)
        return _URL_QUERY.sub(rf"\g<head>{MASK}", text)
    return _KEY_VALUE.sub(rf"\g<head>{MASK}", text)


def setting(name: str, value: Any) -> Any:
    """``value`` of setting ``name`` as shown to people."""
    if "password" in name:
        return MASK if value else value
    if name.endswith("_dsn") and isinstance(value, str):
        return dsn(value)
    return value
