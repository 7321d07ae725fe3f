"""Imports go one way (DEVELOPERS guide, ARCHITECTURE.md): read them with ast and check."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "decoders", "ingest", "geofence", "deviation", "oms_core", "tower", "dashboards", "simulators",
)  # fmt: skip
PROJECT = (*PACKAGES, "menara")
# package -> project packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "decoders": set(),
    "ingest": {"decoders"},
    "geofence": {"decoders"},
    "deviation": {"decoders", "geofence"},
    "oms_core": {"decoders", "geofence", "deviation"},  # never the tower above it
    "tower": {"decoders", "geofence", "deviation", "oms_core"},
    "dashboards": set(),
    "simulators": {"decoders", "ingest"},
}
# single modules a package may import from a package above it: leaves that import nothing
# of the project (checked below), so no arrow points back down through them
ALLOWED_MODULES: dict[str, set[str]] = {"tower": {"menara.settings"}}


def _modules(path: Path) -> set[str]:
    """The project modules ``path`` imports, by full name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m.split(".")[0] in PROJECT}


def _imports(path: Path) -> set[str]:
    return {m.split(".")[0] for m in _modules(path)}


def test_imports_go_one_way() -> None:
    wrong = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for module in _modules(path) - ALLOWED_MODULES.get(pkg, set()):
                target = module.split(".")[0]
                if target not in ALLOWED[pkg] | {pkg}:
                    wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert wrong == []


def test_the_modules_allowed_upwards_import_nothing_of_the_project() -> None:
    for module in set().union(*ALLOWED_MODULES.values()):
        path = ROOT / (module.replace(".", "/") + ".py")
        assert _imports(path) == set(), module


def test_the_check_sees_imports() -> None:
    src = ROOT / "ingest" / "intake.py"
    assert "decoders" in _imports(src)
