"""The live mail database the granular unit tests recover into and compare against."""

from __future__ import annotations

from pathlib import Path

import pytest

from cps.store import MailDatabase
from tests.unit.granular.helpers import ALICE, BOB


@pytest.fixture
def live(tmp_path: Path) -> MailDatabase:
    db = MailDatabase.create(tmp_path / "live.db")
    db.create_mailbox(ALICE)
    db.create_mailbox(BOB)
    return db
