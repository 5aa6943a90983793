"""The golden repositories in tests/fixtures/repos/ (made by tests/fixtures/make_repos.py), as the
tests use them: their names, a private copy of one with what it must restore to, the target each
expected restore names, and damage to every page record of a repository's packs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cps.repository import Repository
from cps.restore import Target

REPOS = Path(__file__).resolve().parent / "fixtures" / "repos"
GOLDEN = sorted(p.name for p in REPOS.glob("v*-*") if (p / "expected.json").is_file())


def copy_golden(name: str, tmp_path: Path) -> tuple[Repository, dict[str, Any]]:
    """A copy of golden repository `name` under `tmp_path`, opened, and its expected.json: the
    fixtures themselves are never changed."""
    expected: dict[str, Any] = json.loads((REPOS / name / "expected.json").read_text())
    root = tmp_path / name
    shutil.copytree(REPOS / name / "repo", root)
    return Repository.open(root, passphrase=expected["passphrase"]), expected


def target_of(case: dict[str, Any]) -> Target:
    if case.get("latest"):
        return Target("latest")
    if "point" in case:
        return Target("point", case["point"])
    return Target("txn", case["txn"])


def damage_every_page(repo: Repository) -> set[str]:
    """Flip one bit in the middle of every page record of every pack of a local repository,
    leaving the index records intact: the damage shows only when a page is read. Returns the keys
    of the packs damaged."""
    assert isinstance(repo.location, Path)
    index = repo.page_index()
    locations = [index.location(row) for row in range(len(index.entries))]
    for location in locations:
        with (repo.location / location.pack).open("r+b") as pack:
            pack.seek(location.offset + location.length // 2)
            byte = pack.read(1)
            pack.seek(-1, 1)
            pack.write(bytes([byte[0] ^ 0x40]))
    return {location.pack for location in locations}
