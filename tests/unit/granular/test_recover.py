"""`recover_into` and message selection between real mail databases: a frozen copy plays the
snapshot, a second database the live store."""

from __future__ import annotations

from pathlib import Path

import pytest

from cps.errors import NotFound, UsageError
from cps.granular import RecoverRequest, recover_into, select_recovery, show_message
from cps.granular.recover import folder_label
from cps.store import MailDatabase
from cps.store.dump import dump_lines
from tests.unit.granular.helpers import ALICE, BOB, frozen_copy, mail


@pytest.fixture
def snapshot(tmp_path: Path) -> MailDatabase:
    """Alice's Projects tree (with an empty subfolder), flags and dates, and one Message-ID that
    two messages share."""
    db = MailDatabase.create(tmp_path / "then.db")
    db.create_mailbox(ALICE)
    db.create_folder(ALICE, "Projects/Empty", parents=True)
    db.create_folder(ALICE, "Projects/2026", parents=True)
    first = db.deliver(mail(1), [ALICE], folder="Projects", internal_date=1_000)[0].message_id
    db.deliver(mail(2), [ALICE], folder="Projects/2026", internal_date=2_000, flags=["\\Seen"])
    db.deliver(mail(3, message_id="<twice@example.org>"), [ALICE], internal_date=3_000)
    db.deliver(mail(4, message_id="<twice@example.org>"), [ALICE], folder="Projects")
    db.set_flags([first], add=["\\Flagged", "$Client"])
    copy = frozen_copy(db, tmp_path / "snapshot.db")
    db.close()
    return copy


def content(db: MailDatabase, address: str, path: str) -> list[tuple[str, int, frozenset[str]]]:
    return [(m.sha256, m.internal_date, m.flags) for m in db.messages(address, path)]


def test_a_folder_goes_to_recovered_items_with_bytes_flags_and_dates(
        snapshot: MailDatabase, live: MailDatabase) -> None:
    report = recover_into(snapshot, "before/cleanup", live, RecoverRequest(ALICE, ("Projects",)))
    root = "Recovered Items/before cleanup"
    assert {f.path_text for f in live.folders(ALICE)} >= {
        root, f"{root}/Projects", f"{root}/Projects/2026", f"{root}/Projects/Empty"}
    for path in ("Projects", "Projects/2026", "Projects/Empty"):
        assert content(live, ALICE, f"{root}/{path}") == content(snapshot, ALICE, path)
    for then, now in zip(snapshot.messages(ALICE, "Projects"),
                         live.messages(ALICE, f"{root}/Projects"), strict=True):
        assert live.fetch_raw(now.id) == snapshot.fetch_raw(then.id)
    assert (report.recovered, report.skipped_present, report.folders) == (3, 0, 3)
    again = recover_into(snapshot, "before/cleanup", live, RecoverRequest(ALICE, ("Projects",)))
    assert (again.recovered, again.skipped_present, again.folders_created) == (0, 3, 0)


def test_merge_adds_only_what_is_missing(snapshot: MailDatabase, live: MailDatabase) -> None:
    live.create_folder(ALICE, "Projects")
    live.deliver(mail(1), [ALICE], folder="Projects")  # still there: not added twice
    live.deliver(mail(1), [ALICE])  # the same content elsewhere does not count
    report = recover_into(snapshot, "p", live, RecoverRequest(ALICE, merge=True, batch=1))
    assert (report.recovered, report.skipped_present, report.batches) == (3, 1, 3)
    assert [m.subject for m in live.messages(ALICE, "Projects")] == ["message 1", "message 4"]
    assert [m.subject for m in live.messages(ALICE, "Inbox")] == ["message 1", "message 3"]
    assert [f.path_text for f in live.folders(ALICE) if f.path_text.startswith("Projects/")] == [
        "Projects/2026", "Projects/Empty"]


def test_into_another_mailbox_and_chosen_messages(snapshot: MailDatabase, live: MailDatabase) -> None:
    request = RecoverRequest(ALICE, ("Projects",), ("1", "<m2@example.org>", "1"),
                             target_mailbox=BOB)
    report = recover_into(snapshot, "txn 9", live, request)
    assert report.recovered == 2
    assert [m.subject for m in live.messages(BOB, "Recovered Items/txn 9/Projects")] == ["message 1"]
    assert [m.subject for m in live.messages(BOB, "Recovered Items/txn 9/Projects/2026")] == [
        "message 2"]
    assert not any(f.path_text.endswith("Empty") for f in live.folders(BOB))


def test_failures_leave_the_live_store_untouched(snapshot: MailDatabase, live: MailDatabase) -> None:
    before = "".join(dump_lines(live.connection))
    with pytest.raises(NotFound) as missing:
        recover_into(snapshot, "p", live, RecoverRequest(ALICE, target_mailbox="carol@example.com"))
    assert missing.value.hint is not None and "--target-mailbox" in missing.value.hint
    with pytest.raises(NotFound) as gone:
        recover_into(snapshot, "p", live, RecoverRequest(ALICE, ("Projets",)))
    assert gone.value.hint is not None and "'Projects'" in gone.value.hint
    with pytest.raises(UsageError) as ambiguous:
        recover_into(snapshot, "p", live, RecoverRequest(ALICE, messages=("<twice@example.org>",)))
    assert "2 messages" in ambiguous.value.message
    assert ambiguous.value.hint is not None and "Inbox UID 1" in ambiguous.value.hint
    assert "Projects UID 2" in ambiguous.value.hint
    with pytest.raises(UsageError, match="needs a folder"):
        recover_into(snapshot, "p", live, RecoverRequest(ALICE, messages=("1",)))
    assert "".join(dump_lines(live.connection)) == before


def test_show_by_uid_and_by_message_id(snapshot: MailDatabase) -> None:
    by_uid = show_message(snapshot, ALICE, ("Projects", "2026"), "1")
    by_id = show_message(snapshot, ALICE, (), "m2@example.org")
    assert by_uid.message == by_id.message and by_id.folder == ("Projects", "2026")
    assert by_id.raw == mail(2) and "body number 2" in by_id.text
    narrowed = show_message(snapshot, ALICE, ("Projects",), "<twice@example.org>")
    assert narrowed.message.subject == "message 4"
    with pytest.raises(NotFound, match="no message with Message-ID <nope@example.org>"):
        show_message(snapshot, ALICE, (), "<nope@example.org>")
    with pytest.raises(UsageError, match="UID or a Message-ID"):
        show_message(snapshot, ALICE, ("Projects",), "first one")
    with pytest.raises(UsageError, match="UID or a Message-ID"):
        show_message(snapshot, ALICE, ("Projects",), "²")  # a digit int() cannot read
    with pytest.raises(UsageError, match="larger than any UID"):
        show_message(snapshot, ALICE, ("Projects",), "9" * 30)
    with pytest.raises(UsageError, match="larger than any UID"):
        show_message(snapshot, ALICE, ("Projects",), "9" * 5000)  # past int()'s digit limit
    assert show_message(snapshot, ALICE, ("Projects",), "0" * 30 + "1").message.uid == 1


def test_a_selection_is_what_a_recovery_adds_and_writes_nothing(snapshot: MailDatabase,
                                                               live: MailDatabase) -> None:
    before = "".join(dump_lines(live.connection))
    picked = select_recovery(snapshot, live, RecoverRequest(ALICE, ("Projects",)))
    assert (picked.address, picked.target) == (ALICE, ALICE)
    assert picked.paths == {("Projects",), ("Projects", "2026"), ("Projects", "Empty")}
    assert [hit.message.subject for hit in picked.chosen] == ["message 1", "message 4", "message 2"]
    assert "".join(dump_lines(live.connection)) == before
    report = recover_into(snapshot, "p", live, RecoverRequest(ALICE, ("Projects",)))
    assert (report.recovered, report.folders) == (len(picked.chosen), len(picked.paths))


@pytest.mark.parametrize("label, expected", [
    ("txn 1234", "txn 1234"),
    ("before/after", "before after"),
    ("  tabs\tand\nnewlines ", "tabs and newlines"),
    ("..", "point"),
    ("/", "point"),
    ("é" * 300, "é" * 100),
])
def test_point_labels_become_valid_folder_names(label: str, expected: str) -> None:
    assert folder_label(label) == expected
