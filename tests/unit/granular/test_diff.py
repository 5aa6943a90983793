"""`diff_databases` on real mail databases: identity by id and content, folders by UIDVALIDITY."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cps.errors import NotFound
from cps.granular import diff_databases
from cps.store import MailDatabase
from tests.unit.granular.helpers import ALICE, BOB, frozen_copy, mail


def places(items: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(m["mailbox"], "/".join(m["folder"]), m["uid"]) for m in items]


def test_identical_databases_have_no_diff(live: MailDatabase, tmp_path: Path) -> None:
    live.deliver(mail(1), [ALICE])
    before = frozen_copy(live, tmp_path / "a.db")
    diff = diff_databases(before, live)
    assert diff.empty
    assert diff.as_dict()["counts"] == dict.fromkeys(diff.counts(), 0)


def test_messages_added_deleted_moved_and_reflagged(live: MailDatabase, tmp_path: Path) -> None:
    kept, moved, gone = (live.deliver(mail(n), [ALICE])[0].message_id for n in (1, 2, 3))
    live.create_folder(ALICE, "Archive")
    before = frozen_copy(live, tmp_path / "a.db")
    live.set_flags([kept], add=["\\Seen", "$Work"])
    live.move([moved], ALICE, "Archive")
    live.set_flags([moved], add=["\\Flagged"])
    live.expunge([gone])
    live.deliver(mail(4), [ALICE, BOB])
    diff = diff_databases(before, live).as_dict()
    assert places(diff["messages_added"]) == [(ALICE, "Inbox", 4), (BOB, "Inbox", 1)]
    assert places(diff["messages_deleted"]) == [(ALICE, "Inbox", 3)]
    assert [(m["id"], m["from"]["folder"], m["to"]["folder"], m["to"]["uid"])
            for m in diff["messages_moved"]] == [(moved, ["Inbox"], ["Archive"], 1)]
    assert [(m["id"], m["added"], m["removed"]) for m in diff["flags_changed"]] == [
        (moved, ["\\Flagged"], []), (kept, ["$Work", "\\Seen"], [])]
    live.set_flags([kept], remove=["$Work"])
    again = diff_databases(before, live).as_dict()
    assert [(m["id"], m["added"], m["removed"]) for m in again["flags_changed"]][1] == (
        kept, ["\\Seen"], [])


def test_a_reused_message_id_with_other_content_is_deleted_and_added(
        live: MailDatabase, tmp_path: Path) -> None:
    live.deliver(mail(1), [ALICE])
    last = live.deliver(mail(2), [ALICE])[0].message_id
    before = frozen_copy(live, tmp_path / "a.db")
    live.expunge([last])
    reused = live.deliver(mail(3), [ALICE])[0].message_id
    assert reused == last  # SQLite gave the largest id again: the case the diff must see through
    diff = diff_databases(before, live)
    assert [(m.id, m.subject) for m in diff.messages_deleted] == [(last, "message 2")]
    assert [(m.id, m.subject) for m in diff.messages_added] == [(last, "message 3")]
    assert diff.messages_moved == () and diff.flags_changed == ()


def test_folders_created_renamed_deleted_and_recreated(live: MailDatabase, tmp_path: Path) -> None:
    live.create_folder(ALICE, "Projects/2026", parents=True)
    live.create_folder(ALICE, "Temp")
    inside = live.deliver(mail(1), [ALICE], folder="Temp")[0].message_id
    before = frozen_copy(live, tmp_path / "a.db")
    live.rename_folder(ALICE, "Projects", "Inbox/Work")
    live.delete_folder(ALICE, "Temp")
    live.create_folder(ALICE, "Temp")  # same name, another folder
    live.create_folder(BOB, "New")
    diff = diff_databases(before, live).as_dict()
    assert [(f["mailbox"], f["path"]) for f in diff["folders_created"]] == [
        (ALICE, ["Temp"]), (BOB, ["New"])]
    assert [(f["mailbox"], f["path"]) for f in diff["folders_deleted"]] == [(ALICE, ["Temp"])]
    assert [(f["from"], f["to"]) for f in diff["folders_renamed"]] == [
        (["Projects"], ["Inbox", "Work"]), (["Projects", "2026"], ["Inbox", "Work", "2026"])]
    assert [m["id"] for m in diff["messages_deleted"]] == [inside]
    assert diff["messages_moved"] == []  # a renamed folder moves no message


def test_mailboxes_created_and_deleted(live: MailDatabase, tmp_path: Path) -> None:
    live.deliver(mail(1), [BOB])
    before = frozen_copy(live, tmp_path / "a.db")
    live.delete_mailbox(BOB)
    live.create_mailbox("carol@example.com")
    diff = diff_databases(before, live)
    assert diff.mailboxes_created == ("carol@example.com",)
    assert diff.mailboxes_deleted == (BOB,)
    assert [(m.mailbox, m.folder) for m in diff.messages_deleted] == [(BOB, ("Inbox",))]


def test_one_mailbox_only(live: MailDatabase, tmp_path: Path) -> None:
    before = frozen_copy(live, tmp_path / "a.db")
    live.deliver(mail(1), [ALICE, BOB])
    diff = diff_databases(before, live, mailbox=" Bob@Example.com ")
    assert [m.mailbox for m in diff.messages_added] == [BOB]
    with pytest.raises(NotFound) as caught:
        diff_databases(before, live, mailbox="alicia@example.com")
    assert caught.value.hint is not None and ALICE in caught.value.hint
