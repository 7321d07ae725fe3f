"""Tracking numbers: format, and every typing slip the check character must catch."""

from __future__ import annotations

import random

from oms_core.tracking import (
    ALPHABET,
    PREFIX,
    check_char,
    new_token,
    new_tracking_number,
    op,
    valid_tracking_number,
)


def _samples(n: int = 300) -> list[str]:
    rng = random.Random(5)
    bodies = ["22222222", "ZZZZZZZZ", "2Z2Z2Z2Z", "ABCDEFGH"]
    bodies += ["".join(rng.choice(ALPHABET) for _ in range(8)) for _ in range(n)]
    return [PREFIX + b + check_char(b) for b in bodies]


def test_alphabet_has_no_ambiguous_characters() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("01OI") & set(ALPHABET)


def test_new_numbers_are_valid_and_well_formed() -> None:
    numbers = {new_tracking_number() for _ in range(1000)}
    assert len(numbers) == 1000
    for n in numbers:
        assert valid_tracking_number(n)
        assert n.startswith("MN-") and len(n) == 12
        assert set(n[3:]) <= set(ALPHABET)


def test_reading_is_forgiving_about_case_and_spaces() -> None:
    n = _samples(1)[0]
    assert valid_tracking_number(f"  {n.lower()[:6]} {n.lower()[6:]} ")


def test_malformed_numbers_are_invalid() -> None:
    n = _samples(1)[-1]
    for bad in ["", "MN-", n[3:], "XX-" + n[3:], n + "2", n[:-1], n[:5] + "0" + n[6:]]:
        assert not valid_tracking_number(bad), bad


def test_every_single_substitution_is_detected() -> None:
    checked = 0
    for n in _samples():
        assert valid_tracking_number(n)
        for i in range(len(PREFIX), len(n)):
            for c in ALPHABET:
                if c != n[i]:
                    assert not valid_tracking_number(n[:i] + c + n[i + 1 :]), (n, i, c)
                    checked += 1
    assert checked == 304 * 9 * 31


def test_every_adjacent_transposition_is_detected() -> None:
    checked = 0
    for n in _samples():
        for i in range(len(PREFIX), len(n) - 1):
            if n[i] != n[i + 1]:
                swapped = n[:i] + n[i + 1] + n[i] + n[i + 2 :]
                assert not valid_tracking_number(swapped), (n, i)
                checked += 1
    assert checked > 304 * 7


def test_the_quasigroup_is_totally_anti_symmetric() -> None:
    """The proof for all inputs, not samples: rows and columns are permutations, and
    (c∘x)∘y = (c∘y)∘x only when x = y, for every c, x, y."""
    n = len(ALPHABET)
    for a in range(n):
        assert sorted(op(a, b) for b in range(n)) == list(range(n))
        assert sorted(op(b, a) for b in range(n)) == list(range(n))
    collisions = [
        (c, x, y)
        for c in range(n)
        for x in range(n)
        for y in range(n)
        if x != y and op(op(c, x), y) == op(op(c, y), x)
    ]
    assert collisions == []


def test_tokens_carry_at_least_128_bits() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) >= 22 and t.isascii() for t in tokens)  # 22 base64 chars = 132 bits
