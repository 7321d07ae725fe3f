"""The README's settings and protocol tables are generated from code and must match it."""

from __future__ import annotations

import dataclasses

from menara import docs
from menara.settings import Settings


def test_readme_generated_sections_are_current() -> None:
    text = docs.README.read_text(encoding="utf-8")
    assert docs.render(text) == text, "run `python -m menara.docs --write`"


def test_every_setting_is_documented_in_readme() -> None:
    text = docs.README.read_text(encoding="utf-8")
    missing = [
        f.name for f in dataclasses.fields(Settings) if f"`MENARA_{f.name.upper()}`" not in text
    ]
    assert missing == []
