"""The SQLite header as verification reads it, on real files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cps.errors import NotAStore
from cps.store import MailDatabase
from cps.verify.physical import read_header


def test_the_header_of_a_new_mail_database(tmp_path: Path) -> None:
    MailDatabase.create(tmp_path / "mail.db").close()
    header = read_header(tmp_path / "mail.db")
    assert header.page_size == 4096 and header.user_version == 2
    assert header.pages == (tmp_path / "mail.db").stat().st_size // 4096


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\x00" + b"\x00" * 20,
                                     b"From: someone\r\n" * 20])
def test_a_file_without_a_whole_sqlite_header_is_not_a_store(tmp_path: Path, content: bytes
                                                             ) -> None:
    (tmp_path / "x.db").write_bytes(content)
    with pytest.raises(NotAStore, match="is not a SQLite database"):
        read_header(tmp_path / "x.db")


def test_another_sqlite_database_is_not_a_store(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "other.db")
    connection.execute("CREATE TABLE t (x)")
    connection.close()
    with pytest.raises(NotAStore, match=r"not a CPS mail database \(application id 0x0\)"):
        read_header(tmp_path / "other.db")


def test_a_mail_database_of_a_newer_schema_is_refused_not_reported_damaged(tmp_path: Path
                                                                         ) -> None:
    MailDatabase.create(tmp_path / "mail.db").close()
    connection = sqlite3.connect(tmp_path / "mail.db")
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(NotAStore, match="schema version 99, newer than this CPS understands"):
        read_header(tmp_path / "mail.db")
