"""A rule state saved and restored as the tower does it (``tower.codec`` through jsonb-safe
JSON text: ``allow_nan=False``, since PostgreSQL's jsonb has no NaN)."""

from __future__ import annotations

import json
from typing import TypeVar

from tower.codec import decode, encode

T = TypeVar("T")


def restored(state: T) -> T:
    return decode(type(state), json.loads(json.dumps(encode(state), allow_nan=False)))
