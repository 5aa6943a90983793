"""Maildir file names and flags, Maildir++ folder names, and reading a real Maildir tree."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cps.store.transfer import maildir
from cps.store.transfer.sources import Candidate, FolderMark, Rejected

_FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forwarded"]


def test_flags_from_the_info_suffix() -> None:
    assert maildir.parse_file_name("1234.M1P2.host:2,") == ("1234.M1P2.host", ())
    assert maildir.parse_file_name("1234.host:2,FRS") == (
        "1234.host", ("\\Answered", "\\Flagged", "\\Seen"))
    assert maildir.parse_file_name("1.h:2,DFPRST") == ("1.h", tuple(sorted(_FLAGS)))
    # Dovecot keyword letters (a-z) and unknown letters are ignored; experimental info is no flags.
    assert maildir.parse_file_name("1.h:2,Sab") == ("1.h", ("\\Seen",))
    assert maildir.parse_file_name("1.h:1,S") == ("1.h", ())
    assert maildir.parse_file_name("1.h") == ("1.h", ())


@given(st.sets(st.sampled_from(_FLAGS)))
def test_info_suffix_round_trips_and_is_sorted(flags: set[str]) -> None:
    suffix = maildir.info_suffix(flags)
    letters = suffix.removeprefix(":2,")
    assert list(letters) == sorted(letters)
    assert set(maildir.parse_file_name("x" + suffix)[1]) == flags


def test_info_suffix_drops_other_keywords() -> None:
    assert maildir.info_suffix(["\\seen", "$Label1", "\\Draft"]) == ":2,DS"


def test_maildir_plus_plus_folder_names() -> None:
    assert maildir.folder_directory(()) == ""
    assert maildir.folder_directory(("Inbox",)) == ".Inbox"
    assert maildir.folder_directory(("Lists", "linux-mips.org", "100%")) == (
        ".Lists.linux-mips%2Eorg.100%25")
    assert maildir.folder_directory((".hidden",)) == ".%2Ehidden"


def _write(path: Path, data: bytes, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def test_reading_a_maildir_tree(tmp_path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir()
    _write(tmp_path / "new" / "200.b.host", b"Subject: b\n\n", 200)
    _write(tmp_path / "new" / "300.c.host:2,S", b"Subject: c\n\n", 300)
    _write(tmp_path / "cur" / "100.a.host:2,RS", b"Subject: a\n\n", 100)
    _write(tmp_path / "cur" / ".hidden", b"Subject: no\n\n", 1)
    _write(tmp_path / "tmp" / "400.d.host", b"Subject: in delivery\n\n", 400)
    _write(tmp_path / ".Lists.mips%2Eorg" / "cur" / "500.e.host:2,F", b"Subject: e\n\n", 500)
    (tmp_path / ".Empty" / "cur").mkdir(parents=True)
    events = list(maildir.read_tree(tmp_path))
    candidates = [e for e in events if isinstance(e, Candidate)]
    assert [(c.folder, c.key, c.raw, c.fixed_date, c.flags) for c in candidates] == [
        ((), "maildir:100.a.host", b"Subject: a\n\n", 100, ("\\Answered", "\\Seen")),
        ((), "maildir:200.b.host", b"Subject: b\n\n", 200, ()),
        ((), "maildir:300.c.host", b"Subject: c\n\n", 300, ()),  # new/ is unseen
        (("Lists", "mips.org"), "maildir:.Lists.mips%2Eorg/500.e.host", b"Subject: e\n\n", 500,
         ("\\Flagged",)),
    ]
    assert [e.folder for e in events if isinstance(e, FolderMark)] == [
        ("Empty",), ("Lists", "mips.org")]
    assert not [e for e in events if isinstance(e, Rejected)]


def test_the_key_does_not_change_when_a_message_moves_from_new_to_cur(tmp_path: Path) -> None:
    _write(tmp_path / "new" / "1.a.host", b"Subject: a\n\n", 1)
    before = [e.key for e in maildir.read_tree(tmp_path) if isinstance(e, Candidate)]
    (tmp_path / "cur").mkdir()
    (tmp_path / "new" / "1.a.host").rename(tmp_path / "cur" / "1.a.host:2,S")
    after = [e.key for e in maildir.read_tree(tmp_path) if isinstance(e, Candidate)]
    assert before == after == ["maildir:1.a.host"]


def test_entries_that_are_not_files_are_rejected_without_blocking(tmp_path: Path) -> None:
    _write(tmp_path / "cur" / "1.ok:2,S", b"Subject: ok\n\n", 1)
    (tmp_path / "cur" / "2.dangling:2,S").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "cur" / "3.fifo:2,S")
    (tmp_path / "cur" / "4.directory").mkdir()
    events = list(maildir.read_tree(tmp_path))
    assert [e.raw for e in events if isinstance(e, Candidate)] == [b"Subject: ok\n\n"]
    assert [(Path(e.where).name, e.reason) for e in events if isinstance(e, Rejected)] == [
        ("2.dangling:2,S", "unreadable: No such file or directory"),
        ("3.fifo:2,S", "not a regular file (a FIFO)"),
        ("4.directory", "not a regular file (a directory)"),
    ]
