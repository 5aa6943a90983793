"""The mail store's Python API against real SQLite files."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from cps.errors import AlreadyExists, InvalidMessage, NotAStore, NotFound, UsageError
from cps.store import MailDatabase, SearchQuery
from cps.store.dump import dump_lines

RAW = b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: budget\r\n\r\nQ3 figures\r\n"


def body_rows(db: MailDatabase) -> int:
    return int(db.connection.execute("SELECT count(*) FROM bodies").fetchone()[0])


def test_new_database_is_wal_with_schema(tmp_path: Path) -> None:
    with MailDatabase.create(tmp_path / "m.db") as db:
        mode = db.connection.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        assert len(db.database_id) == 32
        assert db.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_opening_something_else_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotAStore, match="no mail database"):
        MailDatabase.open(tmp_path / "missing.db")
    (tmp_path / "text.db").write_bytes(b"hello, I am not a database" * 100)
    with pytest.raises(NotAStore):
        MailDatabase.open(tmp_path / "text.db")
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t(x)").connection.close()
    with pytest.raises(NotAStore, match="not a CPS mail database"):
        MailDatabase.open(tmp_path / "other.db")


def test_mailbox_gets_standard_folders(db: MailDatabase) -> None:
    paths = {f.path: f.role for f in db.folders("alice@example.com")}
    assert paths == {
        ("Inbox",): "inbox", ("Sent Items",): "sent", ("Drafts",): "drafts",
        ("Deleted Items",): "trash", ("Junk Email",): "junk",
    }
    with pytest.raises(AlreadyExists):
        db.create_mailbox("ALICE@example.com")


def test_delivery_to_many_recipients_stores_one_body(db: MailDatabase) -> None:
    deliveries = db.deliver(RAW, ["alice@example.com", "bob@example.com"])
    assert [(d.address, d.folder_path, d.uid) for d in deliveries] == [
        ("alice@example.com", ("Inbox",), 1), ("bob@example.com", ("Inbox",), 1)]
    assert body_rows(db) == 1
    for delivery in deliveries:
        assert db.fetch_raw(delivery.message_id) == RAW
        message = db.message(delivery.message_id)
        assert message.sha256 == hashlib.sha256(RAW).hexdigest()
        assert message.subject == "budget" and message.size == len(RAW)


def test_delivery_is_all_or_nothing(db: MailDatabase) -> None:
    with pytest.raises(NotFound, match="nobody@example.com"):
        db.deliver(RAW, ["alice@example.com", "nobody@example.com"])
    assert db.messages("alice@example.com", "Inbox") == []
    assert body_rows(db) == 0


def test_empty_message_is_refused(db: MailDatabase) -> None:
    with pytest.raises(InvalidMessage):
        db.deliver(b"\r\n \r\n", ["alice@example.com"])


def test_move_assigns_new_uid_and_keeps_identity(db: MailDatabase) -> None:
    (delivery,) = db.deliver(RAW, ["alice@example.com"])
    db.create_folder("alice@example.com", "Projects/Budget", parents=True)
    (uid,) = db.move([delivery.message_id], "alice@example.com", "Projects/Budget")
    moved = db.message(delivery.message_id)
    assert uid == 1 and moved.uid == 1
    assert db.folder_of(delivery.message_id).path == ("Projects", "Budget")
    assert db.folder("alice@example.com", "Inbox").uidnext == 2


def test_copy_shares_the_body(db: MailDatabase) -> None:
    (delivery,) = db.deliver(RAW, ["alice@example.com"])
    (copy_id,) = db.copy([delivery.message_id], "alice@example.com", "Drafts")
    assert db.fetch_raw(copy_id) == RAW
    assert body_rows(db) == 1


def test_flags_and_keywords(db: MailDatabase) -> None:
    (delivery,) = db.deliver(RAW, ["alice@example.com"], flags=["\\seen"])
    db.set_flags([delivery.message_id], add=["\\Flagged", "$Important"], remove=["\\Seen"])
    assert db.message(delivery.message_id).flags == {"\\Flagged", "$Important"}
    with pytest.raises(UsageError):
        db.set_flags([delivery.message_id], add=["\\Bogus"])
    assert db.folders("alice@example.com")[2].unseen == 1  # Inbox, in path order


def test_delete_goes_to_deleted_items_then_for_good(db: MailDatabase) -> None:
    (delivery,) = db.deliver(RAW, ["alice@example.com"])
    db.delete([delivery.message_id])
    assert db.folder_of(delivery.message_id).role == "trash"
    db.delete([delivery.message_id])
    with pytest.raises(NotFound):
        db.message(delivery.message_id)
    assert body_rows(db) == 0
    assert db.search(SearchQuery(text="figures")) == []


def test_body_kept_while_any_copy_remains(db: MailDatabase) -> None:
    first, second = db.deliver(RAW, ["alice@example.com", "bob@example.com"])
    db.expunge([first.message_id])
    assert body_rows(db) == 1 and db.fetch_raw(second.message_id) == RAW
    db.expunge([second.message_id])
    assert body_rows(db) == 0


def test_folder_rename_move_and_delete(db: MailDatabase) -> None:
    db.create_folder("alice@example.com", "A/B/C", parents=True)
    (delivery,) = db.deliver(RAW, ["alice@example.com"], folder="A/B/C")
    before = db.folder("alice@example.com", "A/B/C")
    db.rename_folder("alice@example.com", "A/B", "Archive")
    after = db.folder("alice@example.com", "Archive/C")
    assert (after.id, after.uidvalidity) == (before.id, before.uidvalidity)
    with pytest.raises(UsageError, match="into itself"):
        db.rename_folder("alice@example.com", "Archive", "Archive/C/Deeper")
    with pytest.raises(UsageError, match="standard folder"):
        db.rename_folder("alice@example.com", "Inbox", "Renamed")
    with pytest.raises(UsageError, match="standard folder"):
        db.delete_folder("alice@example.com", "Deleted Items")
    db.delete_folder("alice@example.com", "Archive")
    with pytest.raises(NotFound):
        db.message(delivery.message_id)
    assert body_rows(db) == 0


def test_recreated_folder_gets_new_uidvalidity(db: MailDatabase) -> None:
    first = db.create_folder("alice@example.com", "Temp").uidvalidity
    db.delete_folder("alice@example.com", "Temp")
    assert db.create_folder("alice@example.com", "Temp").uidvalidity > first


def test_missing_folder_names_the_nearest(db: MailDatabase) -> None:
    with pytest.raises(NotFound) as caught:
        db.messages("alice@example.com", "Inbx")
    assert caught.value.hint is not None and "Inbox" in caught.value.hint


def test_mailbox_delete_and_purge(db: MailDatabase) -> None:
    db.deliver(RAW, ["bob@example.com"])
    db.delete_mailbox("bob@example.com")
    assert [m.address for m in db.mailboxes()] == ["alice@example.com"]
    assert body_rows(db) == 1  # kept, disconnected
    db.create_mailbox("bob@example.com")  # the address is free again
    db.delete_mailbox("bob@example.com", purge=True)
    assert [m.deleted for m in db.mailboxes(include_deleted=True)] == [False, True, True]
    with pytest.raises(NotFound):
        db.deliver(RAW, ["bob@example.com"])


def test_full_text_search(db: MailDatabase) -> None:
    db.deliver(RAW, ["alice@example.com"], internal_date=1_000_000)
    db.deliver(b"From: dave@example.net\r\nSubject: lunch\r\n\r\nTacos at noon?\r\n",
               ["alice@example.com"], internal_date=2_000_000)
    assert [m.subject for m in db.search(SearchQuery(text="figures"))] == ["budget"]
    assert [m.subject for m in db.search(SearchQuery(from_="dave"))] == ["lunch"]
    assert [m.subject for m in db.search(SearchQuery(subject="lun*"))] == ["lunch"]
    assert [m.subject for m in db.search(SearchQuery(since=1_500_000))] == ["lunch"]
    assert db.search(SearchQuery(text='"; DROP TABLE messages')) == []


def test_dump_is_independent_of_history(tmp_path: Path) -> None:
    """Same content reached by different paths (and row ids) prints the same dump."""
    dumps = []
    for name, detour in (("a.db", False), ("b.db", True)):
        with MailDatabase.create(tmp_path / name) as db:
            db.create_mailbox("alice@example.com")
            if detour:  # burn row ids without changing the end result
                db.deliver(b"Subject: gone\n\nx", ["alice@example.com"], internal_date=5)
                db.expunge([m.id for m in db.messages("alice@example.com", "Inbox")])
                db.connection.execute("UPDATE folders SET uidnext = 1")
            db.deliver(RAW, ["alice@example.com"], internal_date=7, flags=["\\Seen"])
            db.connection.execute("UPDATE mailboxes SET created_at = 0")
            db.connection.execute("UPDATE folders SET created_at = 0, uidvalidity = id")
            dumps.append("".join(dump_lines(db.connection)))
    assert dumps[0] == dumps[1]
    assert 'flags="\\\\Seen"' in dumps[0] and "uid=1 date=1970-01-01T00:00:07Z" in dumps[0]


def test_append_keeps_dates_and_flags_and_creates_folders(db: MailDatabase) -> None:
    from cps.store import AppendItem

    placed = db.append("alice@example.com", [
        AppendItem("Recovered Items/p1/Inbox", RAW, 1_000, ("\\Seen", "$Work")),
        AppendItem("Recovered Items/p1/Inbox", b"Subject: two\r\n\r\nx\r\n", 2_000),
    ])
    assert [(d.folder_path, d.uid) for d in placed] == [
        (("Recovered Items", "p1", "Inbox"), 1), (("Recovered Items", "p1", "Inbox"), 2)]
    listed = db.messages("alice@example.com", "Recovered Items/p1/Inbox")
    assert [(m.internal_date, m.flags) for m in listed] == [
        (1_000, {"\\Seen", "$Work"}), (2_000, frozenset())]
    assert db.fetch_raw(placed[0].message_id) == RAW


def test_append_is_all_or_nothing(db: MailDatabase) -> None:
    from cps.store import AppendItem

    with pytest.raises(InvalidMessage):
        db.append("alice@example.com", [AppendItem("Inbox", RAW, 1), AppendItem("Inbox", b"", 2)])
    assert db.messages("alice@example.com", "Inbox") == []


def test_reads_nest_into_one_snapshot(tmp_path: Path) -> None:
    """Inside `with db.read():` the reading methods see the outer snapshot, whatever another
    connection commits meanwhile, so a walk over every folder is one consistent state."""
    with MailDatabase.create(tmp_path / "m.db") as db:
        db.create_mailbox("alice@example.com")
        with MailDatabase.open(tmp_path / "m.db") as other:
            with db.read():
                before = db.folders("alice@example.com")
                other.deliver(RAW, ["alice@example.com"])
                other.create_folder("alice@example.com", "Later")
                assert db.folders("alice@example.com") == before
                assert db.messages("alice@example.com", "Inbox") == []
            assert [f.path for f in db.folders("alice@example.com")] == sorted(
                [f.path for f in before] + [("Later",)])
            assert len(db.messages("alice@example.com", "Inbox")) == 1


def test_a_stored_envelope_copies_a_message_without_parsing_it_again(tmp_path: Path) -> None:
    """`envelope` reads back what the store derived from a message; `append` given it stores the
    message in another database with the same derived rows, as if it had parsed the bytes."""
    from dataclasses import replace

    from cps.store import AppendItem
    from cps.store.parse import parse_envelope

    raw = (b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nCc: bob@example.com\r\n"
           b"Message-ID: <x1@example.org>\r\nSubject: figures\r\nDate: Mon, 23 Nov 2026 10:00:00 "
           b"+0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nQ3 budget attached\r\n--b\r\nContent-Type: "
           b"application/pdf; name=q3.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
           b"--b--\r\n")
    with MailDatabase.create(tmp_path / "a.db") as source, \
            MailDatabase.create(tmp_path / "b.db") as target:
        source.create_mailbox("alice@example.com")
        target.create_mailbox("alice@example.com")
        message_id = source.deliver(raw, ["alice@example.com"])[0].message_id
        envelope = source.envelope(message_id)
        assert envelope == replace(parse_envelope(raw), defects=())
        assert envelope.attachments and "budget" in envelope.text
        copied = target.append("alice@example.com", [
            AppendItem("Inbox", raw, 5, ("\\Seen",), envelope=envelope)])[0].message_id
        assert target.envelope(copied) == envelope
        assert target.message(copied).has_attachments
        assert [m.id for m in target.search(SearchQuery(text="budget"))] == [copied]
        with pytest.raises(NotFound):
            source.envelope(999)
