"""A repository that cannot be written (a read-only mount of an off-site copy, the safe way to
restore from one) can be restored from and browsed, and nothing in it changes; a reader through
such a mount still holds off a prune through a writable path to the same folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cps.errors import RepositoryLocked
from cps.repository import Repository
from cps.repository.locks import hold
from cps.store import MailDatabase
from tests.conftest import run_cps
from tests.integration.protect_helpers import dump, protected_store, restore, timeline
from tests.mounts import read_only_view

ALICE = "alice@example.com"
MAIL = {ALICE: [b"From: Carol <carol@example.org>\r\nSubject: Minutes %d\r\n\r\nNotes.\r\n" % n
                for n in range(4)]}


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A mail database (no longer written) and the repository `cps protect` made of it."""
    return protected_store(tmp_path_factory.mktemp("protected"), MAIL, ops=60)


def listing(root: Path) -> list[tuple[str, int, int, int]]:
    """Every file and folder under `root`: name, mode, size and modification time."""
    found = []
    for path in sorted(root.rglob("*")):
        status = path.lstat()
        found.append((str(path.relative_to(root)), status.st_mode, status.st_size,
                      status.st_mtime_ns))
    return found


def copy_of(repo: Path, tmp_path: Path, *, with_locks: bool) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    assert (copy / "locks" / "repository").is_file(), "cps protect made no reader lock file"
    if not with_locks:  # a copy made without the lock files, which hold no data
        shutil.rmtree(copy / "locks")
    return copy


@pytest.mark.parametrize("with_locks", [True, False], ids=["lock-files", "no-lock-files"])
def test_restore_and_browse_from_a_read_only_repository(protected: tuple[Path, Path], tmp_path: Path,
                                                        with_locks: bool) -> None:
    db, repo = protected
    copy = copy_of(repo, tmp_path, with_locks=with_locks)
    before = listing(copy)
    with read_only_view(copy, tmp_path / "view") as view:
        restored = restore(view, tmp_path / "restored.db", "--latest")
        browsed = json.loads(run_cps("browse", view, "--latest", ALICE + "/Inbox", "--json").stdout)
        shown = timeline(view)
    assert listing(copy) == before
    assert restored["txn"] == shown["latest_txn"]
    assert dump(tmp_path / "restored.db") == dump(db)
    with MailDatabase.open(db, readonly=True) as live:
        inbox = [m.uid for m in live.messages(ALICE, ("Inbox",))]
    assert [m["uid"] for m in browsed["messages"]] == inbox


def test_a_reader_through_a_read_only_mount_holds_off_prune(protected: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    copy = copy_of(protected[1], tmp_path, with_locks=True)
    lock = copy / "locks" / "repository"
    with read_only_view(copy, tmp_path / "view") as view:
        reader = Repository.open(view)
        with reader.reader_lock(), pytest.raises(RepositoryLocked), hold(lock, exclusive=True):
            pytest.fail("prune's lock was taken while a reader held the repository")
        with hold(lock, exclusive=True):  # and once the reader is done, prune may go on
            assert os.path.getsize(lock) > 0
