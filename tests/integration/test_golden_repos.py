"""The golden repositories in tests/fixtures/repos/, written by earlier CPS versions, restored with
the current code: what keeps old repositories restorable forever.

Each holds `expected.json` (made by tests/fixtures/make_repos.py): the table's rows at every
transaction and the restores that must give those rows or fail with a given error code. The
fixtures are copied before use, so a test never changes them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cps.errors import CPSError, TargetNotCovered
from cps.repository.format import HEADER, KIND_MAGIC, MAX_FORMAT_VERSION, MIN_FORMAT_VERSION
from cps.restore import Target, load_catalog, plan_restore, restore
from tests.golden import GOLDEN, REPOS, copy_golden, target_of

MAGIC_KINDS = {magic: kind for kind, magic in KIND_MAGIC.items()}


def golden(name: str) -> pytest.ParameterSet:
    return pytest.param(name, id=name)


def rows_in(db: Path, query: str) -> list[list[Any]]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [list(row) for row in connection.execute(query)]
    finally:
        connection.close()


def test_there_are_golden_repositories_of_every_readable_version() -> None:
    versions = {int(name.split("-")[0][1:]) for name in GOLDEN}
    assert set(range(MIN_FORMAT_VERSION, MAX_FORMAT_VERSION + 1)) <= versions
    assert {f"v{MAX_FORMAT_VERSION}-plain", f"v{MAX_FORMAT_VERSION}-encrypted"} <= set(GOLDEN)


@pytest.mark.parametrize("name", [golden(n) for n in GOLDEN])
def test_golden_repository_restores_as_expected(name: str, tmp_path: Path) -> None:
    repo, expected = copy_golden(name, tmp_path)
    assert MIN_FORMAT_VERSION <= expected["format_version"] <= MAX_FORMAT_VERSION
    catalog = load_catalog(repo, expected["db_id"])
    for number, case in enumerate(expected["restores"]):
        output = tmp_path / f"restored-{number}.db"
        try:
            plan = plan_restore(catalog, target_of(case))
            result = restore(repo, plan, output, best_effort=case.get("best_effort", False))
        except CPSError as error:
            assert case.get("error") == error.code, f"{case}: {error.code}: {error}"
            assert not output.exists() and not Path(f"{output}.partial").exists()
            continue
        assert "error" not in case, f"{case} restored transaction {result.txn}"
        assert result.txn == case["rows_of"], case
        assert (result.damaged is not None) == bool(case.get("best_effort")), case
        assert rows_in(output, expected["query"]) == expected["states"][str(case["rows_of"])], case


@pytest.mark.parametrize("name", [n for n in GOLDEN if n.endswith(("-plain", "-encrypted"))])
def test_golden_repository_restores_every_segment_time(name: str, tmp_path: Path) -> None:
    repo, expected = copy_golden(name, tmp_path)
    catalog = load_catalog(repo, expected["db_id"])
    [chain] = catalog.chains
    *earlier, last = chain.segments
    assert earlier, "a golden repository has segments"
    with pytest.raises(TargetNotCovered):  # its protector looked at the WAL too soon after
        plan_restore(catalog, Target("time", last.last_time))
    for segment in earlier:
        output = tmp_path / f"at-{segment.last_txn}.db"
        result = restore(repo, plan_restore(catalog, Target("time", segment.last_time)), output)
        assert result.txn == segment.last_txn
        assert rows_in(output, expected["query"]) == expected["states"][str(segment.last_txn)]


@pytest.mark.parametrize("name", [n for n in GOLDEN if n.endswith(("-plain", "-encrypted"))])
def test_golden_transactions_carry_their_commit_times(name: str, tmp_path: Path) -> None:
    """From format 3 on, each transaction carries its commit time from the table's commit clock,
    and a restore to that time is exactly that transaction; older formats carry none."""
    repo, expected = copy_golden(name, tmp_path)
    commit_times = {int(txn): ms for txn, ms in expected.get("commit_times", {}).items()}
    catalog = load_catalog(repo, expected["db_id"])
    [chain] = catalog.chains
    carried = {t.txn: t.committed_at for ref in chain.segments
               for t in repo.read_segment(expected["db_id"], ref).transactions}
    if expected["format_version"] < 3:
        assert set(carried.values()) == {0}
        return
    assert carried == commit_times
    *earlier, (last, last_ms) = sorted(commit_times.items())
    with pytest.raises(TargetNotCovered):  # its protector looked at the WAL too soon after
        plan_restore(catalog, Target("time", last_ms))
    for txn, ms in earlier:
        result = restore(repo, plan_restore(catalog, Target("time", ms)), tmp_path / f"{txn}.db")
        assert result.txn == txn and result.txn_time == ms


@pytest.mark.parametrize("name", GOLDEN)
def test_every_golden_file_carries_its_kind_and_version(name: str) -> None:
    version = int(name.split("-")[0][1:])
    files = [p for p in (REPOS / name / "repo").rglob("*") if p.is_file()]
    assert files
    for path in files:
        magic, file_version, _flags, _reserved = HEADER.unpack_from(path.read_bytes())
        assert magic in MAGIC_KINDS, path
        assert file_version == version, path
