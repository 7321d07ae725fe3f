"""Tracking numbers people can read aloud, and unguessable public tokens.

A tracking number is ``MN-`` + 8 random characters + 1 check character, from a
32-character alphabet without 0/O/1/I. The check character is Damm's scheme over the
quasigroup ``x∘y = 2·x ⊕ y`` in GF(32) (polynomial x⁵+x²+1): a quasigroup catches every
single substitution, and since ``(c∘x)∘y = (c∘y)∘x`` only when x = y it is totally
anti-symmetric, which catches every adjacent transposition, check character included.
(Luhn mod 32 misses the transposition of the first and last alphabet characters.)
The number is for reading on the phone; the token (≥ 128 bits) is what opens the page.
"""

from __future__ import annotations

import secrets

__all__ = [
    "ALPHABET",
    "PREFIX",
    "check_char",
    "new_token",
    "new_tracking_number",
    "op",
    "valid_tracking_number",
]

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
PREFIX = "MN-"
BODY_LEN = 8
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_POLY = 0b100101  # x^5 + x^2 + 1, primitive over GF(2)


def _double(x: int) -> int:
    """2·x in GF(32)."""
    x <<= 1
    return x ^ _POLY if x & 0b100000 else x


def op(interim: int, value: int) -> int:
    """The quasigroup operation ``interim ∘ value``."""
    return _double(interim) ^ value


def _interim(chars: str) -> int:
    acc = 0
    for c in chars:
        acc = op(acc, _VALUE[c])
    return acc


def check_char(body: str) -> str:
    """The character that brings ``body``'s interim to 0 (``2·i ⊕ c = 0`` ⇒ ``c = 2·i``)."""
    return ALPHABET[_double(_interim(body))]


def new_tracking_number() -> str:
    """A fresh random tracking number; uniqueness is the database's job (a UNIQUE index)."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LEN))
    return f"{PREFIX}{body}{check_char(body)}"


def valid_tracking_number(number: str) -> bool:
    """True for a well-formed number with a correct check character (case and spaces ignored)."""
    s = number.strip().upper().replace(" ", "")
    if not s.startswith(PREFIX):
        return False
    code = s[len(PREFIX) :]
    if len(code) != BODY_LEN + 1 or any(c not in _VALUE for c in code):
        return False
    return _interim(code) == 0


def new_token() -> str:
    """A URL-safe public token with 192 bits of randomness."""
    return secrets.token_urlsafe(24)
