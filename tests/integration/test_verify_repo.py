"""`cps verify repo` on damaged repositories: the golden repositories of every format version (made
by the real protector, damaged by tests/fixtures/make_repos.py), copies damaged here by hand, and
one in a bucket of a real S3 server. Each damage must be found with the transactions it makes
unrestorable, by the fast check where a header or an index covers it, and by --read-all
anywhere; a clean repository passes; nothing in the repository changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cps.config import S3Location
from cps.repository import Repository
from cps.repository.format import FOOTER
from cps.repository.storage import open_storage
from cps.verify import RepoReport, check_repository
from tests.conftest import run_cps
from tests.fixtures.make_repos import flip, only_pack, segment_of
from tests.golden import GOLDEN, REPOS, copy_golden, damage_every_page

Lost = tuple[int, int] | None  # (first, last) transaction a finding makes unrestorable


def found(report: RepoReport) -> list[tuple[str, Lost]]:
    return sorted((f.kind, None if f.lost is None else (f.lost.first_txn, f.lost.last_txn))
                  for f in report.findings)


def both_modes(repo: Repository) -> tuple[list[tuple[str, Lost]], list[tuple[str, Lost]]]:
    return (found(check_repository(repo)), found(check_repository(repo, read_all=True)))


def files(root: Path) -> dict[str, bytes]:
    """Every repository file's bytes, but the locks a reader may create."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "locks" not in p.relative_to(root).parts}


UNDAMAGED = [name for name in GOLDEN if name.endswith(("-plain", "-encrypted"))]

# What each damaged golden repository holds wrong, found by both checks: transactions 1 to 7 and a
# recovery point at transaction 4.
DAMAGED = {
    "v3-missing-segment": [("log-missing", (3, 7)), ("point-unrestorable", (3, 7))],
    "v3-truncated-pack": [("pack-damaged", None), ("pages-missing", (1, 7)),
                          ("point-unrestorable", (1, 7))],
    "v3-missing-pack": [("pages-missing", (1, 7)), ("point-unrestorable", (1, 7))],
    "v3-flipped-point": [("point-damaged", None)],
    "v3-flipped-status": [("status-damaged", None)],
    "v3-lost-chain-file": [("chain-file-damaged", None)],
    "v1-missing-segment": [("log-missing", (3, 7)), ("point-unrestorable", (3, 7))],
    "v2-missing-pack": [("pages-missing", (1, 7)), ("point-unrestorable", (1, 7))],
}


@pytest.mark.parametrize("name", UNDAMAGED)
def test_an_undamaged_golden_repository_passes_both_checks(name: str, tmp_path: Path) -> None:
    repo, _expected = copy_golden(name, tmp_path)
    before = files(tmp_path / name)
    fast = check_repository(repo)
    assert fast.findings == [] and fast.checked["segment"] == 6 and fast.checked["pack"] == 1
    assert check_repository(repo, read_all=True).findings == []
    assert files(tmp_path / name) == before


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damage_is_found_with_the_transactions_it_costs(name: str, tmp_path: Path) -> None:
    repo, _expected = copy_golden(name, tmp_path)
    assert both_modes(repo) == (DAMAGED[name], DAMAGED[name])


@pytest.mark.parametrize("name", ["v2-flipped-segment", "v3-flipped-segment"])
def test_a_bit_flipped_inside_a_segment_is_found_by_read_all_only(name: str, tmp_path: Path
                                                                  ) -> None:
    """The flip is in the middle of the transactions' record, which only its checksum covers."""
    repo, _expected = copy_golden(name, tmp_path)
    assert both_modes(repo) == ([], [("segment-damaged", (6, 7))])


def test_a_truncated_segment_is_found_by_the_fast_check(tmp_path: Path) -> None:
    repo, _expected = copy_golden("v3-plain", tmp_path)
    path = segment_of(tmp_path / "v3-plain", 3)
    os.truncate(path, path.stat().st_size - 7)
    assert both_modes(repo) == ([("point-unrestorable", (3, 7)), ("segment-damaged", (3, 7))],) * 2


def test_a_flipped_footer_byte_is_found_by_the_fast_check(tmp_path: Path) -> None:
    repo, _expected = copy_golden("v3-plain", tmp_path)
    path = segment_of(tmp_path / "v3-plain", 5)
    data = bytearray(path.read_bytes())
    data[len(data) - FOOTER.size + 4] ^= 0x01  # the offset of the last record
    path.write_bytes(bytes(data))
    assert both_modes(repo) == ([("segment-damaged", (5, 7))],) * 2


def test_a_flipped_byte_in_a_full_backup_is_found_by_the_fast_check(tmp_path: Path) -> None:
    repo, _expected = copy_golden("v3-plain", tmp_path)
    [full] = (tmp_path / "v3-plain").glob("databases/*/chains/*/fulls/*.full")
    flip(full)
    expected = [("full-damaged", (1, 7)), ("point-unrestorable", (1, 7))]
    assert both_modes(repo) == (expected, expected)


@pytest.mark.parametrize("name", ["v3-plain", "v3-encrypted"])
def test_a_flipped_page_inside_a_pack_is_found_by_read_all(name: str, tmp_path: Path) -> None:
    repo, _expected = copy_golden(name, tmp_path)
    damage_every_page(repo)
    fast, every_byte = both_modes(repo)
    assert fast == []
    assert every_byte == [("pack-damaged", None), ("pages-missing", (1, 7)),
                          ("point-unrestorable", (1, 7))]
    [pack] = [f for f in check_repository(repo, read_all=True).findings if f.kind == "pack-damaged"]
    assert "3 of its 3 pages do not match their content address" in pack.detail
    assert pack.path == str(only_pack(tmp_path / name))


def test_the_command_reports_damage_with_its_range_and_exit_status(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPOS / "v3-flipped-segment" / "repo", root)
    before = files(root)
    segment = segment_of(root, 6)

    fast = run_cps("verify", "repo", root)
    assert "no problems found" in fast.stdout.decode()

    failed = run_cps("verify", "repo", root, "--read-all", check=False)
    assert failed.returncode == 32
    text = failed.stdout.decode()
    assert f"segment-damaged  {segment}" in text
    assert "lost: transactions 6 to 7 of chain 1 after " in text
    assert "restores of chain 1 up to transaction 5 still work" in text
    assert "cps: error [damaged]: 1 problem in" in failed.stderr.decode()

    report = json.loads(run_cps("verify", "repo", root, "--read-all", "--json",
                                check=False).stdout)
    assert not report["clean"] and report["read_all"]
    [finding] = report["findings"]
    assert (finding["kind"], finding["path"], finding["db_id"], finding["chain"]) == \
        ("segment-damaged", str(segment), "tiny", 1)
    assert (finding["lost"]["first_txn"], finding["lost"]["last_txn"]) == (6, 7)
    assert files(root) == before


def upload(name: str, location: S3Location) -> dict[str, Any]:
    """Golden repository `name` put into a bucket, file by file; its expected.json."""
    storage = open_storage(location)
    root = REPOS / name / "repo"
    for path in sorted(root.rglob("*")):
        if path.is_file():
            storage.put(path.relative_to(root).as_posix(), path.read_bytes())
    expected: dict[str, Any] = json.loads((REPOS / name / "expected.json").read_text())
    return expected


def test_a_repository_in_a_bucket_is_checked_through_the_storage(s3_repository: S3Location
                                                                 ) -> None:
    upload("v3-missing-segment", s3_repository)
    failed = run_cps("verify", "repo", s3_repository, "--read-all", "--json", check=False)
    assert failed.returncode == 32
    kinds = [(f["kind"], f["lost"]["first_txn"], f["lost"]["last_txn"])
             for f in json.loads(failed.stdout)["findings"]]
    assert kinds == [("log-missing", 3, 7), ("point-unrestorable", 3, 7)]
