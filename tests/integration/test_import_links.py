"""Symbolic links in an import's source: followed only to a file inside the source, each other one
reported, alike in Maildir, mbox and .eml trees; a source that is itself a link is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cps.store import MailDatabase, SearchQuery
from tests.conftest import run_cps

OUTSIDE = "outside/secret"
LEAVES = "outside the source: not followed"
DIRECTORY = "symbolic link to a directory: not followed"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files and folders beside the sources, which no import may read through a link."""
    root = tmp_path / "outside"
    (root / "folder" / "cur").mkdir(parents=True)
    (root / "folder" / "cur" / "9.host").write_bytes(b"Subject: from outside\n\nsecret\n")
    (root / "secret").write_bytes(b"root:x:0:0:secret:/root:/bin/sh\n")
    (root / "other.mbox").write_bytes(b"From -\nSubject: outside mbox\n\nsecret\n")
    return root


def write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def import_report(tmp_path: Path, source: Path, *options: str) -> tuple[Path, dict[str, Any]]:
    db = tmp_path / f"{source.name}.db"
    run_cps("store", "create", db)
    result = run_cps("store", "import", db, source, "--mailbox", "a@example.com",
                     "--create-mailbox", "--json", *options)
    return db, json.loads(result.stdout)


def problems(report: dict[str, Any], source: Path) -> set[tuple[str, str]]:
    return {(str(Path(p["where"]).relative_to(source)), p["reason"].replace(str(source.parent), ""))
            for p in report["problems"]}


def stored_subjects(db: Path) -> dict[str, list[str]]:
    with MailDatabase.open(db, readonly=True) as database:
        assert database.search(SearchQuery(text="secret")) == []
        return {folder.path_text: [m.subject for m in database.messages("a@example.com", folder.path)]
                for folder in database.folders("a@example.com") if folder.messages}


def test_maildir_links(tmp_path: Path, outside: Path) -> None:
    source = tmp_path / "Maildir"
    write(source, {"cur/1.host:2,S": b"Subject: one\n\n", "kept": b"Subject: kept\n\n",
                   ".Work/cur/2.host": b"Subject: two\n\n"})
    link(source / "cur" / "3.host:2,S", outside / "secret")
    link(source / "cur" / "4.host:2,S", source / "kept")
    link(source / ".Linked", outside / "folder")
    link(source / ".Loop", source)
    link(source / ".Work" / "new", outside / "folder" / "cur")
    db, report = import_report(tmp_path, source)
    assert (report["imported"], report["rejected"]) == (3, 4)
    assert problems(report, source) == {
        ("cur/3.host:2,S", f"symbolic link to /{OUTSIDE}, {LEAVES}"),
        (".Linked", f"symbolic link to /outside/folder, {LEAVES}"),
        (".Loop", DIRECTORY),
        (".Work/new", f"symbolic link to /outside/folder/cur, {LEAVES}"),
    }
    assert stored_subjects(db) == {"Inbox": ["one", "kept"], "Inbox/Work": ["two"]}


def test_eml_tree_links(tmp_path: Path, outside: Path) -> None:
    source = tmp_path / "tree"
    write(source, {"a/1.eml": b"Subject: one\n\n", "kept/2.eml": b"Subject: kept\n\n"})
    link(source / "a" / "3.eml", outside / "secret")
    link(source / "a" / "4.eml", source / "kept" / "2.eml")
    link(source / "b", outside / "folder")
    link(source / "c", source / "a")
    db, report = import_report(tmp_path, source)
    assert (report["imported"], report["rejected"]) == (3, 3)
    assert problems(report, source) == {
        ("a/3.eml", f"symbolic link to /{OUTSIDE}, {LEAVES}"),
        ("b", f"symbolic link to /outside/folder, {LEAVES}"),
        ("c", DIRECTORY),
    }
    assert stored_subjects(db) == {"Inbox/a": ["one", "kept"], "Inbox/kept": ["kept"]}


def test_mbox_tree_links_and_a_linked_source(tmp_path: Path, outside: Path) -> None:
    source = tmp_path / "mboxes"
    write(source, {"inbox.mbox": b"From -\nSubject: one\n\nbody\n"})
    link(source / "linked.mbox", outside / "other.mbox")
    link(source / "folder", outside / "folder")
    db, report = import_report(tmp_path, source, "--format", "mbox")
    assert (report["imported"], report["rejected"]) == (1, 2)
    assert problems(report, source) == {
        ("linked.mbox", f"symbolic link to /outside/other.mbox, {LEAVES}"),
        ("folder", f"symbolic link to /outside/folder, {LEAVES}"),
    }
    assert stored_subjects(db) == {"Inbox/inbox": ["one"]}
    # the source itself is named by the user, and may be a link
    named = tmp_path / "named.mbox"
    link(named, source / "inbox.mbox")
    db, report = import_report(tmp_path, named)
    assert (report["format"], report["imported"], report["problems"]) == ("mbox", 1, [])
