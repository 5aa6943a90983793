"""A point's database image against the golden repositories (written by the real protector, in
every readable format, plain and encrypted, intact and damaged): byte for byte the file a restore
of the same plan writes, the rows the table held at that transaction through the VFS, and damage
reported as the CPSError that names it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cps.errors import CorruptFile, CPSError, MissingFile, TargetNotCovered
from cps.granular.images import LogPages, PointImage
from cps.granular.vfs import serve
from cps.repository import Transaction
from cps.restore import Target, load_catalog, plan_restore, restore
from tests.golden import GOLDEN, copy_golden, damage_every_page, target_of

INTACT = [name for name in GOLDEN if name.endswith(("-plain", "-encrypted"))]
PAGE = 512


def rows_through_the_vfs(image: PointImage, query: str) -> tuple[list[list[Any]], list[str]]:
    """The query's rows and `PRAGMA integrity_check`, read through the VFS."""
    served = serve(image)
    try:
        with closing(served.connect()) as connection:
            rows = [list(row) for row in connection.execute(query)]
            check = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    finally:
        served.close()
    return rows, check


@pytest.mark.parametrize("name", GOLDEN)
def test_a_point_is_the_file_a_restore_writes(name: str, tmp_path: Path) -> None:
    repo, expected = copy_golden(name, tmp_path)
    catalog = load_catalog(repo, expected["db_id"])
    for number, case in enumerate(c for c in expected["restores"] if not c.get("best_effort")):
        try:
            image = PointImage.build(repo, plan_restore(catalog, target_of(case)))
        except CPSError as error:  # the same refusals as a restore, with the same codes
            assert case.get("error") == error.code, f"{case}: {error.code}: {error}"
            continue
        with closing(image):
            rows, check = rows_through_the_vfs(image, expected["query"])
            assert (rows, check) == (expected["states"][str(image.txn)], ["ok"]), case
            if case.get("error") in ("corrupt", "missing"):
                # A restore reads every page of the full backup; a point only those the log did
                # not write again since, and here the log wrote every page again.
                assert image.pages == sum(image.log.has(n) for n in range(1, image.pages + 1))
                continue
            assert "error" not in case, f"{case} opened at transaction {image.txn}"
            output = tmp_path / f"restored-{number}.db"
            result = restore(repo, plan_restore(catalog, target_of(case)), output)
            assert (image.txn, image.txn_time) == (result.txn, result.txn_time)
            assert image.txn == case["rows_of"]
            assert image.read(0, image.size) == output.read_bytes(), case


@pytest.mark.parametrize("name", INTACT)
def test_every_segment_time_is_its_last_transaction(name: str, tmp_path: Path) -> None:
    repo, expected = copy_golden(name, tmp_path)
    catalog = load_catalog(repo, expected["db_id"])
    [chain] = catalog.chains
    *earlier, last = chain.segments
    with pytest.raises(TargetNotCovered):  # its protector looked at the WAL too soon after
        plan_restore(catalog, Target("time", last.last_time))
    for segment in earlier:
        plan = plan_restore(catalog, Target("time", segment.last_time))
        with closing(PointImage.build(repo, plan)) as image:
            assert image.txn == segment.last_txn
            rows, _check = rows_through_the_vfs(image, expected["query"])
            assert rows == expected["states"][str(segment.last_txn)]


@pytest.mark.parametrize("name", [name for name in GOLDEN if name.endswith("-missing-pack")])
def test_at_the_full_backups_own_transaction_every_page_of_a_missing_pack_counts(
        name: str, tmp_path: Path) -> None:
    """Nothing comes from the log there: every page of the full backup is needed, and the one pack
    that holds them is gone."""
    repo, expected = copy_golden(name, tmp_path)
    plan = plan_restore(load_catalog(repo, expected["db_id"]), Target("txn", 1))
    assert plan.full.txn == 1 and not list(repo.location.glob("packs/*/*"))
    pages = repo.read_full(plan.db_id, plan.full).pages
    for _ in range(5):  # the same count every time: none of it comes from memory left over
        with pytest.raises(MissingFile, match=rf"^{pages} pages of the full backup .*: a pack is "
                                              "missing from the repository$"):
            PointImage.build(repo, plan)

@pytest.mark.parametrize("name", INTACT)
def test_a_damaged_page_is_found_when_read(name: str, tmp_path: Path) -> None:
    """Every page record of the pack damaged, its index intact: the point opens (nothing of the
    full backup is read yet), and the first read fails with the pack's name, not garbage."""
    repo, expected = copy_golden(name, tmp_path)
    (damaged_pack,) = damage_every_page(repo)
    plan = plan_restore(load_catalog(repo, expected["db_id"]), Target("txn", 1))
    with closing(PointImage.build(repo, plan)) as image:
        served = serve(image)
        try:
            # SQLite reads the file's header when it connects, so the failure may come then.
            with pytest.raises((CorruptFile, sqlite3.DatabaseError)), \
                    closing(served.connect()) as connection:
                connection.execute(expected["query"]).fetchall()
        finally:
            served.close()
    assert isinstance(served.failure, CorruptFile)
    assert damaged_pack in served.failure.message


def test_a_page_is_checked_against_its_address(tmp_path: Path) -> None:
    repo, _expected = copy_golden(INTACT[-1], tmp_path)
    index = repo.page_index()
    last = len(index.entries) - 1  # the ids are in order: another page than the first
    ids = index.entries["id"][[0, last]].tobytes()  # whole: as `bytes`, an id loses its zero tail
    first, other = ids[:32], ids[32:]
    assert first != other and repo.page_id(repo.read_page(first, index.location(0))) == first
    with pytest.raises(CorruptFile, match="does not hold the page its index names"):
        repo.read_page(other, index.location(0))


def test_the_pages_a_log_wrote_are_the_same_one_by_one_and_all_at_once() -> None:
    log = LogPages(PAGE, 1, 4)
    try:
        assert log.written(20).tolist() == [False] * 20  # no log: nothing, whatever memory held
        log.apply([Transaction(2, 0, 20, ((3, bytes(PAGE)), (9, bytes(PAGE)))),
                   Transaction(3, 0, 20, ((17, bytes(PAGE)), (1, bytes(PAGE))))])
        assert [n for n in range(1, 21) if log.has(n)] == [1, 3, 9, 17]
        assert (np.flatnonzero(log.written(20)) + 1).tolist() == [1, 3, 9, 17]
        assert (np.flatnonzero(log.written(8)) + 1).tolist() == [1, 3]
    finally:
        log.close()
