"""`search` on a real mail database: the store's full-text query, placed in mailboxes and folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from cps.errors import NotFound
from cps.granular import search
from cps.store import MailDatabase, SearchQuery
from tests.unit.granular.helpers import ALICE, BOB, mail


def test_hits_name_their_mailbox_and_folder(tmp_path: Path) -> None:
    db = MailDatabase.create(tmp_path / "m.db")
    for address in (ALICE, BOB, "carol@example.com"):
        db.create_mailbox(address)
    db.create_folder(ALICE, "Projects/2026", parents=True)
    db.deliver(mail(1, subject="budget draft"), [ALICE, BOB], internal_date=1_000)
    db.deliver(mail(2, subject="budget final"), [ALICE], folder="Projects/2026", internal_date=2_000)
    db.deliver(mail(3, subject="lunch"), [ALICE], internal_date=3_000)
    db.deliver(mail(4, subject="budget, disconnected"), ["carol@example.com"])
    db.delete_mailbox("carol@example.com")  # its mail stays in the file but is no mailbox's now

    every = search(db, SearchQuery(subject="budget"))
    assert [(h.address, h.folder, h.message.subject) for h in every] == [
        (ALICE, ("Projects", "2026"), "budget final"),
        (BOB, ("Inbox",), "budget draft"),
        (ALICE, ("Inbox",), "budget draft"),
    ]
    mine = search(db, SearchQuery(text="budget"), mailbox=ALICE, folder=("Projects",))
    assert [h.message.subject for h in mine] == ["budget final"]
    assert search(db, SearchQuery(text="budget", folder_ids=())) == []
    with pytest.raises(NotFound):
        search(db, SearchQuery(text="budget"), mailbox="carol@example.com")
