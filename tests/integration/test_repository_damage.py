"""Damaged repositories: what `cps restore` does when a segment or a pack is flipped, truncated or
gone, with an existing output, and with an encrypted repository and a wrong passphrase.

Each repository is made by a real `cps protect` process over a mail database driven by
`cps store workload`, then copied and damaged by hand. Restored databases are compared by their
canonical dump (what `cps store dump` prints) with the live database or with restores from the
undamaged repository. Every test ends by checking that the rest of the repository is intact: its
other files pass their checksums and other points still restore.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cps.errors import CorruptFile, MissingFile
from cps.repository import Repository, SegmentRef, naming
from cps.repository.format import KIND_MAGIC, parse_file
from cps.restore import Target, format_ms, load_catalog, plan_restore
from cps.restore import restore as restore_plan
from cps.store import MailDatabase
from cps.store.dump import dump_lines
from tests.conftest import run_cps
from tests.integration.protect_helpers import (
    QUICK,
    at_argument,
    create_point,
    dump,
    new_store,
    protecting,
    restore,
    restore_refused,
    timeline,
)

PASSPHRASE = "damage test passphrase"
MAGIC_KINDS = {magic: kind for kind, magic in KIND_MAGIC.items()}


@dataclass
class Source:
    """A protected database at rest and its undamaged repository."""

    folder: Path
    db: Path
    repo: Path
    last_txn: int
    dump: str  # the database at the end: what --latest restores
    _references: dict[int, str] = field(default_factory=dict)

    def reference(self, txn: int) -> str:
        """The dump of transaction `txn` restored from the undamaged repository."""
        if txn not in self._references:
            repo = Repository.open(self.repo)
            plan = plan_restore(load_catalog(repo, "mail"), Target("txn", txn))
            output = restore_plan(repo, plan, self.folder / f"reference-{txn}.db").output
            self._references[txn] = content(output)
        return self._references[txn]


def content(db: Path) -> str:
    """The canonical dump of a database nobody writes any more, as `cps store dump` prints it."""
    with MailDatabase.open(db, readonly=True) as database:
        return "".join(dump_lines(database.connection))


def protect(folder: Path, *, encrypted: bool, ops: int) -> Source:
    db, repo = folder / "mail.db", folder / "repo"
    if encrypted:
        run_cps("store", "create", db)
        run_cps("repo", "init", repo, "--encrypt")
    else:
        new_store(db, repo)
    with protecting(db, repo, *QUICK) as protector:
        # Paced, so that even a fast machine spreads the operations over many segments.
        run_cps("store", "workload", db, "--ops", str(ops), "--seed", "17", "--rate", "400")
        last = create_point(db, repo, "end")
        protector.stop()
    return Source(folder, db, repo, last, content(db))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    return protect(tmp_path_factory.mktemp("plain"), encrypted=False, ops=200)


@pytest.fixture(scope="module")
def encrypted_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    with pytest.MonkeyPatch.context() as patch:  # the passphrase for every process it starts
        patch.setenv("CPS_PASSPHRASE", PASSPHRASE)
        return protect(tmp_path_factory.mktemp("encrypted"), encrypted=True, ops=60)


@pytest.fixture
def repo(source: Source, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source.repo, tmp_path / "repo"))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where restores write: a folder of their own, so that leftovers show."""
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "restored.db"


def segments(repo: Path) -> list[tuple[Path, SegmentRef]]:
    found = []
    for path in sorted(repo.glob("databases/mail/chains/00000001/segments/*.seg")):
        ref = naming.parse_segment(1, path.name)
        assert ref is not None
        found.append((path, ref))
    return found


def middle_segment(repo: Path) -> tuple[Path, SegmentRef]:
    found = segments(repo)
    assert len(found) >= 5, "the test needs a segment with others before and after it"
    return found[len(found) // 2]


def only_pack(repo: Path) -> Path:
    assert len(list(repo.glob("databases/mail/chains/*/fulls/*.full"))) == 1
    [pack] = repo.glob("packs/*/*.pack")
    return pack


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def cut_in_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def assert_nothing_written(output: Path) -> None:
    assert list(output.parent.iterdir()) == [], "a failed restore left files behind"


def assert_otherwise_intact(repo: Path, damaged: frozenset[Path] = frozenset()) -> None:
    """Every repository file but the damaged ones passes its checks."""
    checked = 0
    for path in sorted(repo.rglob("*")):
        if not path.is_file() or path in damaged or {"locks", "requests"} & set(path.parts):
            continue
        data = path.read_bytes()
        parse_file(path, data, MAGIC_KINDS[data[:8]])
        checked += 1
    assert checked >= 8


def test_the_undamaged_repository_restores_the_database(source: Source, out: Path) -> None:
    assert restore(source.repo, out, "--latest")["txn"] == source.last_txn
    assert content(out) == source.dump
    assert_otherwise_intact(source.repo)


@pytest.mark.parametrize("damage", [flip_a_bit, cut_in_half], ids=["bit-flipped", "truncated"])
def test_a_damaged_segment_fails_latest_and_best_effort_gives_the_point_before_it(
        damage: Callable[[Path], None], source: Source, repo: Path, out: Path) -> None:
    path, ref = middle_segment(repo)
    damage(path)

    failed = restore_refused(repo, out, "--latest")
    assert failed.returncode == 32
    message = failed.stderr.decode()
    assert f"transactions {ref.first_txn} to {ref.last_txn}" in message
    assert format_ms(ref.first_time) in message and format_ms(ref.last_time) in message
    assert path.name in message and "--best-effort" in message
    assert_nothing_written(out)

    before = ref.first_txn - 1
    best = restore(repo, out.with_name("best.db"), "--latest", "--best-effort")
    assert best["txn"] == before
    assert f"transactions {ref.first_txn} to {ref.last_txn}" in best["damaged"]
    exact = restore(repo, out.with_name("exact.db"), "--txn", str(before))
    assert exact["txn"] == before and exact["damaged"] is None
    assert dump(out.with_name("best.db")) == dump(out.with_name("exact.db")) == source.reference(before)

    _earlier_path, earlier = segments(repo)[1]
    assert restore(repo, out.with_name("earlier.db"), "--at", at_argument(earlier.last_time))["txn"] \
        == earlier.last_txn
    assert_otherwise_intact(repo, frozenset({path}))


def test_a_missing_segment_cuts_the_chain_and_restores_before_it_still_work(
        source: Source, repo: Path, out: Path) -> None:
    path, ref = middle_segment(repo)
    path.unlink()
    before = ref.first_txn - 1

    [chain] = timeline(repo)["chains"]
    [hole] = chain["holes"]
    assert (hole["first_txn"], hole["kind"]) == (ref.first_txn, "missing")
    assert [(s["first_txn"], s["last_txn"]) for s in chain["spans"]] == [(1, before)]
    for target in (["--txn", str(ref.first_txn)], ["--recovery-point", "end"], ["--latest"],
                   ["--at", "now"]):
        failed = restore_refused(repo, out, *target)
        assert failed.returncode == 32, target
        message = failed.stderr.decode()
        assert f"transactions {ref.first_txn} to " in message, message
        assert f"Restorable: transactions 1 to {before} " in message
    assert_nothing_written(out)

    assert restore(repo, out, "--txn", str(before))["txn"] == before
    assert content(out) == source.reference(before)
    assert_otherwise_intact(repo)


@pytest.mark.parametrize("damage, status", [
    pytest.param(flip_a_bit, CorruptFile.exit_status, id="bit-flipped"),
    pytest.param(cut_in_half, CorruptFile.exit_status, id="truncated"),
    pytest.param(Path.unlink, MissingFile.exit_status, id="missing"),
])
def test_a_damaged_pack_fails_the_restore_and_leaves_nothing(
        damage: Callable[[Path], None], status: int, source: Source, repo: Path, out: Path) -> None:
    pack = only_pack(repo)
    original = pack.read_bytes()
    damage(pack)

    failed = restore_refused(repo, out, "--latest")
    assert failed.returncode == status, failed.stderr.decode()
    if status == CorruptFile.exit_status:
        assert pack.name in failed.stderr.decode()
    assert_nothing_written(out)

    assert_otherwise_intact(repo, frozenset({pack}))
    pack.write_bytes(original)  # with the pack back, the repository restores everything again
    assert restore(repo, out, "--latest")["txn"] == source.last_txn
    assert content(out) == source.dump


def test_a_missing_pack_error_names_a_file(repo: Path, out: Path) -> None:
    only_pack(repo).unlink()
    [full] = repo.glob("databases/mail/chains/*/fulls/*.full")
    failed = restore_refused(repo, out, "--latest")
    assert full.name in failed.stderr.decode()


def test_an_existing_output_is_refused_and_left_untouched(source: Source, repo: Path, out: Path) -> None:
    out.write_bytes(b"precious")
    failed = run_cps("restore", repo, "--to", out, "--latest", check=False)
    assert failed.returncode == 30
    message = failed.stderr.decode()
    assert "already exists" in message and "--force" in message
    assert out.read_bytes() == b"precious"
    assert list(out.parent.iterdir()) == [out]

    assert restore(repo, out, "--latest", "--force")["txn"] == source.last_txn
    assert content(out) == source.dump
    assert_otherwise_intact(repo)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def encrypted_repo(encrypted_source: Source, tmp_path: Path) -> Path:
    return Path(shutil.copytree(encrypted_source.repo, tmp_path / "encrypted"))


def test_an_encrypted_repository_restores_end_to_end(
        encrypted_source: Source, encrypted_repo: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPS_PASSPHRASE", PASSPHRASE)
    assert timeline(encrypted_repo)["latest_txn"] == encrypted_source.last_txn
    assert restore(encrypted_repo, out, "--latest")["txn"] == encrypted_source.last_txn
    assert content(out) == encrypted_source.dump
    by_point = restore(encrypted_repo, out.with_name("point.db"), "--recovery-point", "end")
    assert by_point["txn"] == encrypted_source.last_txn
    assert_otherwise_intact(encrypted_repo)


def test_a_wrong_or_missing_passphrase_fails_cleanly_and_writes_nothing(
        encrypted_source: Source, encrypted_repo: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(encrypted_repo)
    monkeypatch.setenv("CPS_PASSPHRASE", PASSPHRASE + "!")
    failed = restore_refused(encrypted_repo, out, "--latest")
    assert failed.returncode == 12
    assert "wrong passphrase" in failed.stderr.decode()
    assert run_cps("timeline", encrypted_repo, check=False).returncode == 12

    monkeypatch.delenv("CPS_PASSPHRASE")
    missing = run_cps("restore", encrypted_repo, "--to", out, "--latest", check=False, stdin=b"")
    assert missing.returncode == 12
    assert "--passphrase-file" in missing.stderr.decode() and "CPS_PASSPHRASE" in missing.stderr.decode()
    assert_nothing_written(out)
    assert snapshot(encrypted_repo) == before

    middle = (encrypted_source.last_txn + 1) // 2
    monkeypatch.setenv("CPS_PASSPHRASE", PASSPHRASE)
    assert restore(encrypted_repo, out, "--txn", str(middle))["txn"] == middle


def verify_repo(repo: Path, *options: str) -> tuple[int, list[dict[str, Any]]]:
    """`cps verify repo --json`: its exit status and findings."""
    done = run_cps("verify", "repo", repo, "--json", *options, check=False)
    return done.returncode, json.loads(done.stdout)["findings"]


@pytest.mark.parametrize("options", [(), ("--read-all",)], ids=["fast", "read-all"])
def test_verify_repo_passes_the_undamaged_repository(source: Source, options: tuple[str, ...]
                                                     ) -> None:
    assert verify_repo(source.repo, *options) == (0, [])


@pytest.mark.parametrize("damage, fast_finds", [(flip_a_bit, False), (cut_in_half, True)],
                         ids=["bit-flipped", "truncated"])
def test_verify_repo_names_what_a_damaged_segment_costs(
        damage: Callable[[Path], None], fast_finds: bool, source: Source, repo: Path) -> None:
    (_path_before, before), (path, ref) = segments(repo)[2:4]
    damage(path)
    expected = [("segment-damaged", str(path), ref.first_txn, source.last_txn, before.last_time),
                ("point-unrestorable", str(repo / "databases" / "mail" / "points"),
                 ref.first_txn, source.last_txn, before.last_time)]

    def summary(findings: list[dict[str, Any]]) -> list[tuple[object, ...]]:
        return [(f["kind"], f["path"] if f["kind"] != "point-unrestorable" else
                 str(Path(f["path"]).parent), f["lost"]["first_txn"], f["lost"]["last_txn"],
                 f["lost"]["after_time"]) for f in findings]

    status, findings = verify_repo(repo, "--read-all")
    assert (status, summary(findings)) == (32, expected)
    status, findings = verify_repo(repo)
    assert (status, summary(findings)) == ((32, expected) if fast_finds else (0, []))
