"""Opening a point as a mail database: refusals leave nothing held. (Points of real mail stores,
and the lock held while one is open, are in tests/integration/test_granular.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cps.errors import NotAStore, TargetNotCovered
from cps.granular import open_snapshot
from cps.repository import Repository
from cps.repository.locks import hold
from cps.restore import Target

PLAIN = Path(__file__).resolve().parents[2] / "fixtures" / "repos" / "v2-plain" / "repo"


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    shutil.copytree(PLAIN, tmp_path / "repo")
    return Repository.open(tmp_path / "repo")


def prune_could_run(repo: Repository) -> bool:
    """Whether nothing holds the repository's reader lock (prune takes it exclusively)."""
    with hold(repo.location / "locks" / "repository", exclusive=True):
        return True


def test_a_database_that_is_not_a_mail_database_is_refused(repo: Repository) -> None:
    with pytest.raises(NotAStore, match="tiny at transaction 7 is not a CPS mail database") as caught:
        open_snapshot(repo, "tiny", Target("latest"))
    assert caught.value.hint is not None and "cps restore" in caught.value.hint
    assert prune_could_run(repo)


def test_a_point_outside_the_repository_is_refused(repo: Repository) -> None:
    with pytest.raises(TargetNotCovered):
        open_snapshot(repo, "tiny", Target("txn", 99))
    assert prune_could_run(repo)
