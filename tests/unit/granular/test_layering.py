"""Granular recovery stands on the store, the repository and restore, through their public names
only, and never on capture."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import cps.granular

PACKAGE = Path(cps.granular.__file__).parent
ALLOWED = {"store", "store.transfer", "repository", "restore", "errors", "durable"}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module relative to cps, names) of every relative import outside the granular package."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.startswith("cps")]
        elif isinstance(node, ast.ImportFrom) and node.level == 2:
            found.append((node.module or "", [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cps"):
            found.append((f"absolute {node.module}", []))
    return found


def test_only_public_names_of_the_parts_below() -> None:
    offending = []
    for path in sorted(PACKAGE.glob("*.py")):
        for module, names in imports(path):
            if module not in ALLOWED:
                offending.append(f"{path.name} imports {module}")
                continue
            public = set(getattr(importlib.import_module(f"cps.{module}"), "__all__", names))
            offending += [f"{path.name} imports {module}.{n}" for n in names if n not in public]
    assert offending == []


def test_public_surface_is_what_all_says() -> None:
    exported = cps.granular.__all__
    assert sorted(exported) == sorted(set(exported))
    assert all(hasattr(cps.granular, name) for name in exported)
    assert cps.granular.__doc__ and "never imports capture" in cps.granular.__doc__
