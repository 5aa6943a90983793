"""`cps verify store` on real mail databases of corpus mail, damaged for real: rows changed under
the store with SQLite, pages overwritten and files cut short while the database is closed. Each
damage must be found with the object it hit named; `--repair` must mend what it says it mends and
nothing else (judged by the canonical dump), and leave what only a backup can mend as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cps.store import AppendItem, MailDatabase, SearchQuery
from cps.store.dump import dump_lines
from cps.store.transfer import import_mail
from tests.conftest import CORPUS, run_cps
from tests.integration.intake_helpers import make_database

ALICE, BOB = "alice@example.com", "bob@example.com"
SHARED = (b"From: Carol <carol@example.org>\r\nTo: alice@example.com, bob@example.com\r\n"
          b"Subject: Quarterly budget zephyrine\r\nMessage-ID: <budget-2027@example.org>\r\n\r\n"
          b"The figures are in.\r\n")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Alice with an Enron user's folder tree, Bob with an Enron inbox and Projects/2026, and a
    message delivered to both (one body, two messages)."""
    if not (CORPUS / "README.md").is_file():
        pytest.skip(f"the mail corpus is not at {CORPUS} (set CPS_CORPUS)")
    path = make_database(tmp_path_factory.mktemp("verify") / "mail.db", ALICE, BOB)
    with MailDatabase.open(path) as db:
        import_mail(db, CORPUS / "enron" / "gilbertsmith-d", ALICE, ("Enron",))
        import_mail(db, CORPUS / "enron" / "allen-p" / "inbox", BOB, ("Inbox",))
        db.create_folder(BOB, "Projects/2026", parents=True)
        db.move([m.id for m in db.messages(BOB, "Inbox", limit=3)], BOB, "Projects/2026")
        db.deliver(SHARED, [ALICE, BOB])
    return path


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Path:
    """A copy of the template, closed (its WAL checkpointed away) and ready to damage."""
    path = tmp_path / "mail.db"
    shutil.copyfile(template, path)
    return path


def verify(path: Path, *options: str) -> tuple[int, dict[str, Any]]:
    """`cps verify store PATH --json` as a process: its exit status and its JSON document."""
    result = run_cps("verify", "store", path, "--json", *options, check=False)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result.returncode, json.loads(result.stdout)


def kinds(report: dict[str, Any]) -> list[str]:
    return sorted(f["kind"] for f in report["findings"])


def dump(path: Path) -> list[str]:
    with MailDatabase.open(path, readonly=True) as db:
        return list(dump_lines(db.connection))


@contextmanager
def under_the_store(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain SQLite connection, with none of the store's rules, that commits on leaving."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        yield connection
        connection.execute("COMMIT")
    finally:
        connection.close()


def message_row(path: Path, address: str, folder: str, uid: int) -> tuple[int, int]:
    """(message id, body id) of a message."""
    with MailDatabase.open(path, readonly=True) as db:
        message = db.message_by_uid(address, folder, uid)
        body = db.connection.execute(
            "SELECT body_id FROM messages WHERE id = ?", (message.id,)).fetchone()[0]
    return message.id, body


def folder_id(path: Path, address: str, folder: str) -> int:
    with MailDatabase.open(path, readonly=True) as db:
        return db.folder(address, folder).id


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# A sound store


def test_a_sound_store_is_clean_and_exits_0(store: Path) -> None:
    for options in ((), ("--quick",)):
        status, report = verify(store, *options)
        assert (status, report["findings"], report["clean"]) == (0, [], True)
    text = run_cps("verify", "store", store).stdout.decode()
    assert text == f"{store}: no problems found\n"


def test_checking_writes_nothing(store: Path) -> None:
    before = sha256_of(store)
    verify(store)
    assert sha256_of(store) == before


def test_a_file_that_is_not_a_database_is_refused_as_not_a_store(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just text\n" * 50)
    result = run_cps("verify", "store", notes, check=False)
    assert result.returncode == 3
    assert result.stderr.decode().startswith(f"cps: error [not-a-store]: {notes} is not a SQLite")


# Bodies: only a backup has the right bytes


def shared_messages(path: Path) -> list[tuple[str, str, int, int]]:
    """(mailbox, folder, UID, message id) of both messages showing SHARED, and their body id."""
    found = []
    with MailDatabase.open(path, readonly=True) as db:
        for address in (ALICE, BOB):
            [hit] = [m for m in db.messages(address, "Inbox")
                     if m.sha256 == hashlib.sha256(SHARED).hexdigest()]
            found.append((address, "Inbox", hit.uid, hit.id))
    return found


def body_of(path: Path, message_id: int) -> int:
    with MailDatabase.open(path, readonly=True) as db:
        return int(db.connection.execute(
            "SELECT body_id FROM messages WHERE id = ?", (message_id,)).fetchone()[0])


def test_a_deleted_body_names_every_message_showing_it_and_a_recovery_mends_it(store: Path
                                                                               ) -> None:
    shown = shared_messages(store)
    body = body_of(store, shown[0][3])
    with under_the_store(store) as sql:
        sql.execute("DELETE FROM body_raw WHERE body_id = ?", (body,))
    status, report = verify(store)
    assert status == 60 and kinds(report) == ["missing-body", "missing-body"]
    named = sorted((f["mailbox"]["address"], f["folder"]["path"], f["message"]["uid"],
                    f["message"]["id"]) for f in report["findings"])
    assert named == sorted(shown)
    for finding in report["findings"]:
        assert finding["message"]["message_id"] == "<budget-2027@example.org>"
        assert finding["repair"] is None and finding["layer"] == "logical"
        assert (f"cps recover REPO --at TIME --mailbox {finding['mailbox']['address']} --folder "
                f"Inbox --message '<budget-2027@example.org>' --into {store}") in finding["remedy"]
    damaged = dump(store)
    status, repaired = verify(store, "--repair")
    assert (status, repaired["repaired"], kinds(repaired)) == (60, [], kinds(report))
    assert dump(store) == damaged
    # What `cps recover` does: the same bytes stored again, into a folder of recovered mail.
    with MailDatabase.open(store) as db:
        db.append(ALICE, [AppendItem("Recovered Items/test", SHARED, 1_790_000_000)])
    assert verify(store)[0] == 0
    with MailDatabase.open(store, readonly=True) as db:
        assert [db.fetch_raw(message_id) for *_, message_id in shown] == [SHARED, SHARED]


def test_a_body_whose_bytes_changed_is_found_and_left_for_a_backup(store: Path) -> None:
    with MailDatabase.open(store, readonly=True) as db:
        folder = next(f for f in db.folders(ALICE) if f.path[0] == "Enron" and f.messages > 5)
        message = db.messages(ALICE, folder.path)[4]
    body = body_of(store, message.id)
    with under_the_store(store) as sql:
        raw = bytearray(sql.execute("SELECT raw FROM body_raw WHERE body_id = ?",
                                    (body,)).fetchone()[0])
        raw[len(raw) // 2] ^= 0x20
        sql.execute("UPDATE body_raw SET raw = ? WHERE body_id = ?", (bytes(raw), body))
    status, report = verify(store)
    [finding] = report["findings"]
    assert (status, finding["kind"]) == (60, "body-hash-mismatch")
    assert (finding["mailbox"]["address"], finding["folder"], finding["message"]) == (
        ALICE, {"id": folder.id, "path": folder.path_text},
        {"id": message.id, "uid": message.uid, "message_id": message.message_id})
    assert message.sha256 in finding["detail"] and "cps recover" in finding["remedy"]
    before = sha256_of(store)
    assert verify(store, "--repair")[0] == 60
    with MailDatabase.open(store, readonly=True) as db:
        assert db.fetch_raw(message.id) == bytes(raw)
    assert sha256_of(store) == before


# What --repair mends, judged by the canonical dump


def changed_lines(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """The dump lines only `before` has, and those only `after` has."""
    return sorted(set(before) - set(after)), sorted(set(after) - set(before))


def repair_and_check(store: Path) -> dict[str, Any]:
    """`--repair`, which must succeed, and a second check, which must be clean."""
    status, repaired = verify(store, "--repair")
    assert (status, repaired["findings"], repaired["refused"]) == (0, [], None), repaired
    status, again = verify(store)
    assert (status, again["findings"]) == (0, [])
    return repaired


def test_a_dangling_folder_parent_is_found_and_the_folder_moved_to_the_top(store: Path) -> None:
    original = dump(store)
    projects, year = folder_id(store, BOB, "Projects"), folder_id(store, BOB, "Projects/2026")
    with under_the_store(store) as sql:
        sql.execute("UPDATE folders SET parent_id = 999999 WHERE id = ?", (year,))
    status, report = verify(store)
    [finding] = report["findings"]
    assert (status, finding["kind"], finding["detail"]) == (
        60, "folder-parent-missing", "its parent folder 999999 is gone")
    assert (finding["mailbox"]["address"], finding["folder"]) == (BOB, {"id": year,
                                                                        "path": "…/2026"})
    repaired = repair_and_check(store)
    assert [f["folder"]["id"] for f in repaired["repaired"]] == [year]
    gone, new = changed_lines(original, dump(store))
    assert [line.split(" role=")[0] for line in gone + new] == [
        '  folder ["Projects", "2026"]', '  folder ["2026"]']
    assert projects != year


def test_a_folder_cycle_is_found_and_broken_where_the_tree_was(store: Path) -> None:
    original = dump(store)
    projects, year = folder_id(store, BOB, "Projects"), folder_id(store, BOB, "Projects/2026")
    with under_the_store(store) as sql:
        sql.execute("UPDATE folders SET parent_id = ? WHERE id = ?", (year, projects))
    status, report = verify(store)
    [finding] = report["findings"]
    assert (status, finding["kind"], finding["folder"]["id"]) == (60, "folder-cycle", projects)
    assert f"Projects ({projects})" in finding["detail"] and f"2026 ({year})" in finding["detail"]
    repair_and_check(store)
    assert dump(store) == original  # Projects was at the top: the tree is as it was


def break_unique_uids(path: Path, message_id: int, uid: int) -> None:
    """Give a message another's UID behind SQLite's back, as a damaged index would let happen:
    the UNIQUE constraint is taken out of the schema for one write, then put back, so the unique
    index misses the row."""
    def rewrite(change: str, *values: object) -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("BEGIN")
        connection.execute(change, values)
        version = connection.execute("PRAGMA schema_version").fetchone()[0]
        connection.execute(f"PRAGMA schema_version = {version + 1}")
        connection.execute("COMMIT")
        connection.close()

    with under_the_store(path) as sql:
        table_sql, index_row = (sql.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'messages'").fetchone()[0],
            sql.execute("SELECT * FROM sqlite_schema WHERE name = 'sqlite_autoindex_messages_1'"
                        ).fetchone())
    rewrite("DELETE FROM sqlite_schema WHERE name = 'sqlite_autoindex_messages_1'")
    rewrite("UPDATE sqlite_schema SET sql = replace(sql, ',\n    UNIQUE (folder_id, uid)', '') "
            "WHERE name = 'messages'")
    with under_the_store(path) as sql:
        sql.execute("UPDATE messages SET uid = ? WHERE id = ?", (uid, message_id))
    rewrite("UPDATE sqlite_schema SET sql = ? WHERE name = 'messages'", table_sql)
    rewrite("INSERT INTO sqlite_schema VALUES (?, ?, ?, ?, ?)", *index_row)


def test_a_duplicate_uid_is_found_and_the_later_message_renumbered(store: Path) -> None:
    original = dump(store)
    with MailDatabase.open(store, readonly=True) as db:
        first, second = db.messages(BOB, "Inbox", limit=2)
        uidnext = db.folder(BOB, "Inbox").uidnext
    break_unique_uids(store, second.id, first.uid)
    status, report = verify(store)
    assert (status, kinds(report)) == (60, ["duplicate-uid", "index-damaged"]), report
    duplicate = next(f for f in report["findings"] if f["kind"] == "duplicate-uid")
    assert (duplicate["folder"]["path"], duplicate["message"]["id"]) == ("Inbox", second.id)
    assert duplicate["detail"] == f"UID {first.uid} is message {first.id}'s too"
    damaged_index = next(f for f in report["findings"] if f["kind"] == "index-damaged")
    assert damaged_index["index"] == "sqlite_autoindex_messages_1"
    repair_and_check(store)
    gone, new = changed_lines(original, dump(store))
    uidvalidity = db_uidvalidity(store)
    assert [_short(line) for line in gone] == [
        f"message uid={second.uid}", f'folder ["Inbox"] role=inbox uidvalidity={uidvalidity} '
                                     f"uidnext={uidnext}"]
    assert [_short(line) for line in new] == [
        f"message uid={uidnext}", f'folder ["Inbox"] role=inbox uidvalidity={uidvalidity} '
                                  f"uidnext={uidnext + 1}"]


def _short(line: str) -> str:
    """A dump line up to its dates: a message's UID, a folder's numbering."""
    return line.split(" date=")[0].split(" created=")[0].strip()


def db_uidvalidity(path: Path) -> int:
    with MailDatabase.open(path, readonly=True) as db:
        return db.folder(BOB, "Inbox").uidvalidity


def enron_message(path: Path) -> tuple[int, int, str]:
    """(message id, body id, folder path) of one of Alice's imported messages."""
    with MailDatabase.open(path, readonly=True) as db:
        folder = next(f for f in db.folders(ALICE) if f.path[0] == "Enron" and f.messages > 5)
        message = db.messages(ALICE, folder.path)[2]
    return message.id, body_of(path, message.id), folder.path_text


def damage_uidnext(sql: sqlite3.Connection, path: Path) -> dict[str, Any]:
    inbox = folder_id(path, BOB, "Inbox")
    sql.execute("UPDATE folders SET uidnext = 1 WHERE id = ?", (inbox,))
    return {"kind": "uid-not-below-uidnext", "folder": {"id": inbox, "path": "Inbox"}}


def damage_size(sql: sqlite3.Connection, path: Path) -> dict[str, Any]:
    _message, body, _folder = enron_message(path)
    sql.execute("UPDATE bodies SET size = size + 100 WHERE id = ?", (body,))
    return {"kind": "body-size-wrong", "body_id": body}


def damage_uidvalidity(sql: sqlite3.Connection, path: Path) -> dict[str, Any]:
    sql.execute("UPDATE meta SET value = '1' WHERE key = 'next_uidvalidity'")
    return {"kind": "next-uidvalidity-behind", "folder": None, "message": None}


def damage_text_missing(sql: sqlite3.Connection, path: Path) -> dict[str, Any]:
    message, body, folder = enron_message(path)
    sql.execute("DELETE FROM body_text WHERE rowid = ?", (body,))
    return {"kind": "text-index-missing", "body_id": body, "folder": {
        "id": folder_id(path, ALICE, folder), "path": folder}}


def damage_text_extra(sql: sqlite3.Connection, path: Path) -> dict[str, Any]:
    sql.execute("INSERT INTO body_text(rowid, subject, from_addr, to_addr, text) "
                "VALUES (424242, 'ghost', '', '', 'nothing')")
    return {"kind": "text-index-extra", "body_id": 424242, "message": None}


def damage_text_structures(sql: sqlite3.Connection, path: Path) -> dict[str, Any]:
    sql.execute("UPDATE body_text_data SET block = zeroblob(length(block)) "
                "WHERE id = (SELECT max(id) FROM body_text_data)")
    return {"kind": "text-index-damaged"}


@pytest.mark.parametrize("damage", [damage_uidnext, damage_size, damage_uidvalidity,
                                    damage_text_missing, damage_text_extra,
                                    damage_text_structures], ids=lambda d: d.__name__)
def test_a_repairable_damage_is_found_and_repaired_to_the_dump_it_had(store: Path, damage: Any
                                                                      ) -> None:
    original = dump(store)
    with under_the_store(store) as sql:
        expected = damage(sql, store)
    status, report = verify(store)
    [finding] = report["findings"]
    assert status == 60 and {key: finding[key] for key in expected} == expected, finding
    assert finding["repair"] and finding["remedy"] is None
    repaired = repair_and_check(store)
    assert [f["kind"] for f in repaired["repaired"]] == [expected["kind"]]
    assert dump(store) == original


def test_a_repaired_full_text_index_finds_the_message_again(store: Path) -> None:
    with under_the_store(store) as sql:
        sql.execute("DELETE FROM body_text WHERE rowid = (SELECT body_id FROM messages "
                    "WHERE uid = 1 AND folder_id = ?)", (folder_id(store, ALICE, "Inbox"),))
    query = SearchQuery(subject="zephyrine")
    with MailDatabase.open(store, readonly=True) as db:
        assert db.search(query) == []
    repair_and_check(store)
    with MailDatabase.open(store, readonly=True) as db:
        assert sorted(m.id for m in db.search(query)) == sorted(
            message_id for *_, message_id in shared_messages(store))


def test_a_database_out_of_wal_mode_is_put_back(store: Path) -> None:
    connection = sqlite3.connect(store)
    assert connection.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    connection.close()
    original = dump(store)
    status, report = verify(store)
    assert (status, kinds(report)) == (60, ["not-wal"])
    repair_and_check(store)
    with MailDatabase.open(store, readonly=True) as db:
        assert db.connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert dump(store) == original


# Damage to the file: only a backup mends it, and --repair writes nothing


def page_size(path: Path) -> int:
    with MailDatabase.open(path, readonly=True) as db:
        return int(db.connection.execute("PRAGMA page_size").fetchone()[0])


def a_leaf_page_of(path: Path, table: str) -> int:
    """A page in the middle of the file that holds rows of `table` (SQLite's dbstat)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    pages = [page for (page,) in connection.execute(
        "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
        (table,))]
    connection.close()
    return pages[len(pages) // 2]


def assert_left_for_a_backup(store: Path, report: dict[str, Any]) -> None:
    """--repair refuses, writes nothing, and every finding says to restore."""
    before = sha256_of(store)
    status, repaired = verify(store, "--repair")
    assert (status, repaired["repaired"]) == (60, [])
    assert "nothing was written" in repaired["refused"]
    assert sha256_of(store) == before
    assert all(f["remedy"].startswith("Restore the database from backup: cps restore")
               for f in report["findings"])


def test_a_torn_page_names_the_table_it_hit(store: Path) -> None:
    size, page = page_size(store), a_leaf_page_of(store, "messages")
    assert 1 < page < store.stat().st_size // size  # in the middle of the file
    with store.open("r+b") as handle:  # the first sector of the page written, the rest not
        handle.seek((page - 1) * size)
        handle.write(b"\xa5" * 512)
    status, report = verify(store)
    assert status == 60
    damaged = [f for f in report["findings"] if f["kind"] == "page-damaged"]
    assert [(f["table"], f["layer"]) for f in damaged] == [("messages", "physical")]
    assert_left_for_a_backup(store, report)


@pytest.mark.parametrize("cut", ["whole pages", "inside a page"])
def test_a_truncated_file_is_found(store: Path, cut: str) -> None:
    size = page_size(store)
    length = store.stat().st_size - (3 * size if cut == "whole pages" else 1000)
    with store.open("r+b") as handle:
        handle.truncate(length)
    status, report = verify(store)
    [finding] = report["findings"]
    assert (status, finding["kind"]) == (60, "truncated-file")
    assert finding["detail"].startswith(f"the file has {length} bytes; its header says ")
    assert report["unchecked"]
    assert_left_for_a_backup(store, report)


def test_the_text_report_says_what_where_and_what_to_do(store: Path) -> None:
    inbox = folder_id(store, BOB, "Inbox")
    with under_the_store(store) as sql:
        sql.execute("UPDATE folders SET uidnext = 1 WHERE id = ?", (inbox,))
    result = run_cps("verify", "store", store, check=False)
    assert result.returncode == 60
    assert result.stdout.decode().splitlines() == [
        f"{store}: 1 problem found",
        f"  uid-not-below-uidnext  {BOB}/Inbox",
        "    UIDNEXT is 1 but UID 67 is in use: the next message would take a UID already given",
        "    --repair raises UIDNEXT above the folder's highest UID"]
    assert result.stderr.decode().splitlines() == [
        f"cps: error [damaged-store]: 1 problem in {store}",
        "hint: 1 problem can be repaired without losing mail: cps verify store DB --repair. "
        "Each problem printed says what to do."]
    repaired = run_cps("verify", "store", store, "--repair").stdout.decode().splitlines()
    assert repaired == [
        "repaired 1 problem",
        f"  uid-not-below-uidnext  {BOB}/Inbox: raises UIDNEXT above the folder's highest UID",
        f"{store}: no problems found"]


def test_repair_mends_what_it_can_and_leaves_a_lost_body_to_a_backup(store: Path) -> None:
    body = body_of(store, shared_messages(store)[0][3])
    with under_the_store(store) as sql:
        sql.execute("DELETE FROM body_raw WHERE body_id = ?", (body,))
        sql.execute("DELETE FROM body_text WHERE rowid = ?", (body,))
        sql.execute("UPDATE folders SET uidnext = 1 WHERE id = ?", (folder_id(store, BOB, "Inbox"),))
    status, repaired = verify(store, "--repair")
    assert status == 60 and repaired["refused"] is None
    assert [f["kind"] for f in repaired["repaired"]] == ["uid-not-below-uidnext"]
    assert kinds(repaired) == ["missing-body", "missing-body", "text-index-missing"]
