"""`cps store import | export` on real files: the whole corpus, re-runs, round trips in every
format, a SIGKILLed import, unreadable entries and hostile names."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cps.store import MailDatabase
from cps.store.transfer import import_mail
from tests.conftest import CPS, run_cps

BOM = b"\xef\xbb\xbf"
# Messages per file, from the corpus README: an oracle that does not depend on any splitter.
MBOX_COUNTS = {
    "enron.slinger-r.deleted_items.mbox": 35, "enron.slinger-r.inbox.mbox": 49,
    "enron.slinger-r.sent_items.mbox": 48, "linux-mips-1998-06.mbox": 134,
    "linux-mips-2001-04.mbox": 293, "linux-mips-2004-05.mbox": 230,
    "linux-mips-2010-04.mbox": 208, "linux-mips-2019-04.mbox": 478,
}
Entry = tuple[str, tuple[str, ...], str]  # (mailbox, folder path, sha256 of the raw bytes)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def import_json(*args: str | Path) -> dict[str, Any]:
    return json.loads(run_cps("store", "import", *args, "--json").stdout)  # type: ignore[no-any-return]


def stored(db_path: Path) -> list[Entry]:
    """Every message of every mailbox, hashing the raw bytes the store hands back."""
    entries = []
    with MailDatabase.open(db_path, readonly=True) as db:
        for mailbox in db.mailboxes():
            for folder in db.folders(mailbox.address):
                for message in db.messages(mailbox.address, folder.path):
                    raw = db.fetch_raw(message.id)
                    entries.append((mailbox.address, folder.path, sha(raw)))
    return entries


def difference(expected: list[Entry], actual: list[Entry]) -> str:
    """What is missing and what is extra, readably; empty when both hold the same messages."""
    want, got = Counter(expected), Counter(actual)
    lines = [f"missing {e}" for e in sorted(want - got)] + [f"extra {e}" for e in sorted(got - want)]
    return "\n".join(lines[:40] + ([f"... {len(lines) - 40} more"] if len(lines) > 40 else []))


def eml_tree(root: Path, mailbox: str, target: tuple[str, ...]) -> list[Entry]:
    """What importing an .eml tree must store: every non-empty file, in its directory's folder."""
    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.read_bytes().strip():
            entries.append((mailbox, target + path.parent.relative_to(root).parts, sha(path.read_bytes())))
    return entries


def mbox_messages(path: Path) -> list[bytes]:
    """The messages of a well-formed mboxrd file, split by the rules written out independently:
    a From_ line after an empty line starts a message, one separator line is dropped, and one '>'
    is removed from ^>+From lines."""
    data = path.read_bytes().removeprefix(BOM)
    starts = [0] + [m.end() for m in re.finditer(rb"\n\r?\n(?=From )", data)]
    messages = []
    for start, end in zip(starts, [*starts[1:], len(data)], strict=True):
        chunk = data[start:end].split(b"\n", 1)[1]
        if chunk.endswith(b"\r\n\r\n"):
            chunk = chunk[:-2]
        elif chunk.endswith(b"\n\n"):
            chunk = chunk[:-1]
        messages.append(re.sub(rb"(?m)^>(>*From )", rb"\1", chunk))
    return messages


def test_whole_corpus_keeps_every_byte_and_a_second_run_imports_nothing(
    corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "corpus.db"
    run_cps("store", "create", db)
    sources = [
        (corpus / "enron", "enron@corpus.example", ()),
        (corpus / "mbox", "lists@corpus.example", ("--format", "mbox")),
        (corpus / "tricky", "tricky@corpus.example", ()),
    ]
    reports = [
        import_json(db, source, "--mailbox", mailbox, "--create-mailbox", *options)
        for source, mailbox, options in sources
    ]

    expected = eml_tree(corpus / "enron", "enron@corpus.example", ("Inbox",))
    expected += eml_tree(corpus / "tricky", "tricky@corpus.example", ("Inbox",))
    for name, count in MBOX_COUNTS.items():
        messages = mbox_messages(corpus / "mbox" / name)
        assert len(messages) == count, name
        folder = ("Inbox", name.removesuffix(".mbox"))
        expected += [("lists@corpus.example", folder, sha(raw)) for raw in messages]
    assert difference(expected, stored(db)) == ""

    enron, lists, tricky = reports
    assert (enron["found"], enron["imported"], enron["rejected"]) == (9048, 9048, 0)
    assert (lists["found"], lists["imported"], lists["rejected"]) == (1475, 1475, 0)
    assert (tricky["found"], tricky["imported"], tricky["rejected"]) == (768, 765, 3)
    errors = {(p["where"], p["reason"]) for p in tricky["problems"] if p["severity"] == "error"}
    assert errors == {
        (str(corpus / "tricky" / name), "empty message")
        for name in ("mikel-mail/sample_output_multipart", "sisimai-set-of-emails/mailbox/size-0",
                     "sisimai-set-of-emails/mailbox/size-1")
    }
    warnings = [p for p in tricky["problems"] if p["severity"] == "warning"]
    assert warnings and all(p["reason"].startswith("parse defects: ") for p in warnings)

    again = [
        import_json(db, source, "--mailbox", mailbox, *options)
        for source, mailbox, options in sources
    ]
    assert [(r["imported"], r["skipped_already_imported"]) for r in again] == [
        (0, 9048), (0, 1475), (0, 765)]
    assert difference(expected, stored(db)) == ""


def _tree(root: Path, files: dict[str, bytes], mtime: int = 1_000_000_000) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))


def _by_directory(root: Path) -> dict[str, list[str]]:
    """Sorted content hashes of the files of each directory below `root`."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            found.setdefault(str(path.parent.relative_to(root)), []).append(sha(path.read_bytes()))
    return {directory: sorted(hashes) for directory, hashes in found.items()}


def test_eml_import_then_export_gives_back_every_file(corpus: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    for part in (corpus / "enron" / "richey-c", corpus / "tricky" / "linux-mips-selected",
                 corpus / "tricky" / "sisimai-set-of-emails" / "maildir"):
        for path in part.rglob("*"):
            if path.is_file() and path.read_bytes().strip():
                _tree(source, {str(part.name / path.relative_to(part)): path.read_bytes()})
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    import_json(db, source, "--mailbox", "a@example.com", "--create-mailbox", "--folder", "Old/Tree")
    run_cps("store", "export", db, "a@example.com/Old/Tree", tmp_path / "out", "--format", "eml")
    assert _by_directory(tmp_path / "out") == _by_directory(source)
    with MailDatabase.open(db, readonly=True) as database:
        dates = {
            (m.uid, m.internal_date)
            for m in database.messages("a@example.com", "Old/Tree/richey-c/inbox")
        }
    exported = {
        (int(p.stem), int(p.stat().st_mtime)) for p in (tmp_path / "out/richey-c/inbox").iterdir()
    }
    assert exported == dates and len(dates) > 10


def test_maildir_export_keeps_bytes_flags_dates_and_odd_folder_names(tmp_path: Path) -> None:
    db_path = tmp_path / "mail.db"
    names = ["Inbox", ".hidden", "v1.2 release", "notes.eml", "100% done", "A.mbox"]
    with MailDatabase.create(db_path) as db:
        db.create_mailbox("a@example.com")
        for number, name in enumerate(names):
            path = ("Inbox", name) if name != "Inbox" else ("Inbox",)
            if name != "Inbox":
                db.create_folder("a@example.com", path)
            raw = f"Subject: {number}\r\n\r\nFrom here\r\n>From there\r\n".encode()
            db.deliver(raw, ["a@example.com"], folder=path, internal_date=1_200_000_000 + number,
                       flags=["\\Seen", "\\Flagged"] if number % 2 else ["$Forwarded"])
        db.create_folder("a@example.com", ("Inbox", "v1.2 release", "empty"))
    before = _listing(db_path, "Inbox")
    for kind in ("maildir", "eml", "mbox"):
        out = tmp_path / kind
        run_cps("store", "export", db_path, "a@example.com/Inbox", out, "--format", kind)
        options = ("--format", "mbox") if kind == "mbox" else ()
        import_json(db_path, out, "--mailbox", "a@example.com", "--folder", f"Back/{kind}", *options)
        inner = "Inbox/" if kind == "mbox" else ""
        after = _listing(db_path, f"Back/{kind}/{inner}".rstrip("/"))
        width = 4 if kind == "maildir" else 3  # only Maildir keeps flags
        assert [e[:width] for e in after] == [e[:width] for e in before], kind
    assert sorted(os.listdir(tmp_path / "maildir")) == sorted([
        "cur", "new", "tmp", ".%2Ehidden", ".v1%2E2 release", ".v1%2E2 release.empty",
        ".notes%2Eeml", ".100%25 done", ".A%2Embox"])
    assert os.listdir(tmp_path / "maildir" / ".%2Ehidden" / "cur") == [
        "1200000001.M2.cps:2,FS"]


def _listing(db_path: Path, root: str) -> list[tuple[Any, ...]]:
    """(folder below root, sha256, internal date, flags) of every message under root, and a row
    for each empty folder."""
    prefix = tuple(root.split("/"))
    rows: list[tuple[Any, ...]] = []
    with MailDatabase.open(db_path, readonly=True) as db:
        for folder in db.folders("a@example.com"):
            if folder.path[: len(prefix)] == prefix:
                for m in db.messages("a@example.com", folder.path):
                    rows.append((folder.path[len(prefix):], m.sha256, m.internal_date,
                                 sorted(m.flags)))
                if not folder.messages:
                    rows.append((folder.path[len(prefix):], "empty folder"))
    return sorted(rows, key=repr)


def test_mbox_export_round_trips_the_corpus_lists(corpus: Path, tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    import_json(db, corpus / "mbox", "--format", "mbox", "--mailbox", "l@example.com",
                "--create-mailbox", "--folder", "Lists")
    run_cps("store", "export", db, "l@example.com/Lists", tmp_path / "out", "--format", "mbox")
    assert sorted(os.listdir(tmp_path / "out")) == ["Lists", "Lists.mbox"]
    import_json(db, tmp_path / "out", "--format", "mbox", "--mailbox", "l@example.com",
                "--folder", "Again")
    with MailDatabase.open(db, readonly=True) as database:
        for folder in database.folders("l@example.com"):
            if folder.path[0] != "Lists" or len(folder.path) == 1:
                continue
            original = database.messages("l@example.com", folder.path)
            copy = database.messages("l@example.com", ("Again", *folder.path))
            assert [(m.sha256, m.internal_date) for m in copy] == [
                (m.sha256, m.internal_date) for m in original], folder.path
            assert len(original) == MBOX_COUNTS[folder.path[-1] + ".mbox"]


def test_export_refuses_a_destination_in_use_and_reports_a_full_disk(tmp_path: Path) -> None:
    db_path = tmp_path / "mail.db"
    with MailDatabase.create(db_path) as db:
        db.create_mailbox("a@example.com")
        for number in range(20):
            db.deliver(b"Subject: big %d\r\n\r\n" % number + b"x" * 100_000, ["a@example.com"])
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_bytes(b"mine")
    refused = run_cps("store", "export", db_path, "a@example.com", tmp_path / "used", "--format",
                      "eml", check=False)
    assert refused.returncode == 2 and b"is not empty" in refused.stderr
    assert os.listdir(tmp_path / "used") == ["keep.txt"]
    full = subprocess.run(
        ["bash", "-c", 'ulimit -f 500 && exec "$@"', "bash", sys.executable, "-m", "cps", "store",
         "export", str(db_path), "a@example.com", str(tmp_path / "small"), "--format", "mbox"],
        capture_output=True, timeout=120,
    )
    assert full.returncode == 3, full.stderr
    assert b"export failed writing" in full.stderr and b"File too large" in full.stderr
    assert b"Traceback" not in full.stderr
    assert not [p for p in (tmp_path / "small").rglob("*") if p.name.endswith(".tmp")]


def test_killed_import_resumes_to_the_same_content_as_a_clean_one(
    corpus: Path, tmp_path: Path
) -> None:
    source = corpus / "enron" / "allen-p"
    killed, clean = tmp_path / "killed.db", tmp_path / "clean.db"
    for db in (killed, clean):
        run_cps("store", "create", db)
    command = [str(Path(sys.executable).parent / "cps"), "store", "import", str(killed),
               str(source), "--mailbox", "e@example.com", "--create-mailbox", "--batch", "25"]
    committed = _stop_midway(command, killed, signal.SIGKILL)
    interrupted = _check_whole_messages(killed)
    assert committed <= interrupted < 3034, "the import finished before it could be killed"

    resumed = import_json(killed, source, "--mailbox", "e@example.com")
    assert (resumed["imported"], resumed["skipped_already_imported"]) == (
        3034 - interrupted, interrupted)
    import_json(clean, source, "--mailbox", "e@example.com", "--create-mailbox")
    assert _comparable_dump(killed) == _comparable_dump(clean)
    assert _check_whole_messages(killed) == 3034


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_an_mbox_import_stopped_midway_and_resumed_holds_every_source_message_once(
    corpus: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    command = [*CPS, "store", "import", str(db), str(corpus / "mbox"), "--format", "mbox",
               "--mailbox", "m@example.com", "--create-mailbox", "--batch", "20", "--workers", "2"]
    _stop_midway(command, db, stop)
    interrupted = _check_whole_messages(db)
    assert 0 < interrupted < 1475, "the import was not stopped midway"

    resumed = import_json(db, corpus / "mbox", "--format", "mbox", "--mailbox", "m@example.com")
    assert (resumed["imported"], resumed["skipped_already_imported"]) == (
        1475 - interrupted, interrupted)
    expected = [("m@example.com", ("Inbox", name.removesuffix(".mbox")), sha(raw))
                for name in MBOX_COUNTS for raw in mbox_messages(corpus / "mbox" / name)]
    assert difference(expected, stored(db)) == ""
    assert _check_whole_messages(db) == 1475


def test_a_killed_parsing_process_stops_the_import_with_advice_and_a_rerun_completes_it(
    corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    source = corpus / "enron" / "allen-p"
    command = [*CPS, "store", "import", str(db), str(source), "--mailbox", "w@example.com",
               "--create-mailbox", "--batch", "20", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        _poll(lambda: process.poll() is not None or _count_messages(db) > 0,
              "no message was committed")
        workers = _children(process.pid)
        assert process.poll() is None and len(workers) == 2, "the import ended too soon"
        os.kill(workers[-1], signal.SIGKILL)
        _out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err
    assert b"ended unexpectedly" in err and b"run the same import again" in err, err.decode()
    assert b"Traceback" not in err
    _poll(lambda: _group_gone(process.pid), "a process of the stopped import is still running")
    interrupted = _check_whole_messages(db)
    assert 0 < interrupted < 3034

    resumed = import_json(db, source, "--mailbox", "w@example.com")
    assert resumed["imported"] == 3034 - interrupted
    assert difference(eml_tree(source, "w@example.com", ("Inbox",)), stored(db)) == ""


def _children(pid: int) -> list[int]:
    """The worker processes `pid` started with multiprocessing's "spawn" that are still running
    (not its resource tracker)."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def _stop_midway(command: list[str], db: Path, stop: signal.Signals) -> int:
    """Run an import, stop it with `stop` once it has committed messages, and wait until every
    process of it is gone; the number of messages it had committed before the signal."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        _poll(lambda: process.poll() is not None or _count_messages(db) > 0,
              "no message was committed")
        assert process.poll() is None, "the import ended before it could be stopped"
        committed = _count_messages(db)
        os.kill(process.pid, stop)
        assert process.wait(timeout=60) == (-stop if stop == signal.SIGKILL else 130)
    finally:
        if process.poll() is None:
            process.kill()
        assert process.stderr is not None
        process.stderr.close()
    # The reading and parsing processes notice that the writer is gone and leave.
    _poll(lambda: _group_gone(process.pid), "a process of the stopped import is still running")
    return committed


def _poll(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Check `condition` every few milliseconds until it holds, failing after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s")
        time.sleep(0.005)


def _count_messages(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])


def _group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def _check_whole_messages(db: Path) -> int:
    """The number of messages, after checking that each is whole: its raw bytes present and
    matching its hash, and recorded in `imports`."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = connection.execute(
            "SELECT m.id, b.sha256, r.raw FROM messages m JOIN bodies b ON b.id = m.body_id "
            "LEFT JOIN body_raw r ON r.body_id = b.id").fetchall()
        recorded = connection.execute("SELECT message_id FROM imports").fetchall()
    assert sorted(message_id for message_id, _digest, _raw in rows) == sorted(
        message_id for (message_id,) in recorded)
    for message_id, digest, raw in rows:
        assert raw is not None and hashlib.sha256(raw).digest() == digest, message_id
    return len(rows)


def _comparable_dump(db: Path) -> str:
    """The canonical dump without what differs between two databases created at different
    times: UIDVALIDITY values and creation times."""
    text = run_cps("store", "dump", db).stdout.decode()
    return re.sub(r" (uidvalidity|created)=\S+", "", text)


def test_parsing_in_worker_processes_imports_exactly_what_one_process_does(
    corpus: Path, tmp_path: Path
) -> None:
    source = corpus / "tricky" / "mimekit"
    reports, listings = [], []
    for workers in (0, 1, 3):  # each into its own database: bodies are stored once per database
        with MailDatabase.create(tmp_path / f"{workers}.db") as db:
            db.create_mailbox("a@example.com")
            reports.append(import_mail(db, source, "a@example.com", ("Imported",), workers=workers))
            listings.append([
                (f.path, m.uid, m.sha256, m.internal_date, db.envelope(m.id))
                for f in db.folders("a@example.com")
                for m in db.messages("a@example.com", f.path)])
    assert listings[1:] == [listings[0]] * 2 and len(listings[0]) == reports[0].imported > 30
    assert [(r.found, r.rejected, r.problems) for r in reports[1:]] == [
        (reports[0].found, reports[0].rejected, reports[0].problems)] * 2


def test_two_concurrent_runs_of_one_import_store_each_message_once(
    corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    run_cps("store", "mailbox", "create", db, "r@example.com")
    command = [sys.executable, "-m", "cps", "store", "import", str(db),
               str(corpus / "enron" / "richey-c"), "--mailbox", "r@example.com", "--batch", "10",
               "--json"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(2)]
    reports = [json.loads(run.communicate(timeout=300)[0]) for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sum(r["imported"] for r in reports) == 582
    assert sum(r["imported"] + r["skipped_already_imported"] for r in reports) == 2 * 582
    assert _check_whole_messages(db) == 582


def test_unreadable_entries_and_empty_files_are_reported_and_the_rest_imported(
    tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    _tree(maildir, {
        "cur/1.ok.host:2,S": b"Subject: one\n\nfine\n",
        "new/2.ok.host": b"Subject: two\n\nfine\n",
        "new/3.empty.host": b"",
        ".Work/cur/4.ok.host:2,RS": b"Subject: four\n\nfine\n",
    })
    (maildir / "tmp").mkdir()
    (maildir / "cur" / "5.dangling.host:2,S").symlink_to(maildir / "gone")
    os.mkfifo(maildir / "cur" / "6.fifo.host")
    (maildir / ".Work" / "cur" / "7.dir.host").mkdir()
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    report = import_json(db, maildir, "--mailbox", "a@example.com", "--create-mailbox")
    assert (report["format"], report["found"], report["imported"], report["rejected"]) == (
        "maildir", 7, 3, 4)
    problems = {(Path(p["where"]).name, p["reason"]) for p in report["problems"]}
    assert problems == {
        ("3.empty.host", "empty message"),
        ("5.dangling.host:2,S", "unreadable: No such file or directory"),
        ("6.fifo.host", "not a regular file (a FIFO)"),
        ("7.dir.host", "not a regular file (a directory)"),
    }
    listing = json.loads(run_cps("store", "ls", db, "a@example.com/Inbox/Work", "--json").stdout)
    assert [(m["subject"], sorted(m["flags"])) for m in listing] == [
        ("four", ["\\Answered", "\\Seen"])]


def test_hostile_names_in_a_source_are_reported_per_file(tmp_path: Path) -> None:
    source = tmp_path / "tree"
    _tree(source, {
        "fine/1.eml": b"Subject: fine\n\n",
        "bell\x07name/2.eml": b"Subject: bell\n\n",
        "trailing /3.eml": b"Subject: space\n\n",
        "bell\x07name/inner/4.eml": b"Subject: deeper\n\n",
    })
    undecodable = os.fsencode(source) + b"/caf\xe9"
    os.mkdir(undecodable)
    with open(undecodable + b"/5.eml", "wb") as handle:
        handle.write(b"Subject: latin-1 directory\n\n")
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    report = import_json(db, source, "--mailbox", "a@example.com", "--create-mailbox")
    assert (report["imported"], report["rejected"]) == (1, 4)
    rejected = sorted(p["where"] for p in report["problems"] if p["reason"].startswith(
        "invalid folder name"))
    assert rejected == sorted(f"{source}/{name}" for name in (
        "bell\\x07name/2.eml", "bell\\x07name/inner/4.eml", "trailing /3.eml", "caf\\xe9/5.eml"))
    not_created = sorted(p["where"] for p in report["problems"] if p["reason"].startswith(
        "folder not created: invalid folder name"))
    assert not_created == sorted(f"{source}/{name}" for name in (
        "bell\\x07name", "bell\\x07name/inner", "trailing ", "caf\\xe9"))
    assert all("control characters" in p["reason"] or "white space" in p["reason"]
               for p in report["problems"])
    folders = json.loads(run_cps("store", "ls", db, "a@example.com", "--json").stdout)
    assert [f["path"] for f in folders if f["path"][0] == "Inbox"] == [["Inbox"], ["Inbox", "fine"]]


def test_a_single_mbox_file_with_a_bom_and_an_unquoted_from_line(tmp_path: Path) -> None:
    mbox = tmp_path / "broken.mbox.txt"
    first = b"Subject: a\nDate: Tue, 2 Jun 1998 13:22:01 +0000\n\nFrom Russia with love\n"
    mbox.write_bytes(BOM + b"From -\n" + first + b"\nFrom -\nSubject: b\n\nbody\n")
    db_path = tmp_path / "mail.db"
    run_cps("store", "create", db_path)
    report = import_json(db_path, mbox, "--mailbox", "a@example.com", "--create-mailbox")
    assert (report["format"], report["imported"]) == ("mbox", 2)
    with MailDatabase.open(db_path, readonly=True) as db:
        messages = db.messages("a@example.com", "Inbox")
        assert [db.fetch_raw(m.id) for m in messages] == [first, b"Subject: b\n\nbody\n"]
        # No date in the From_ line: the Date header gives the internal date.
        assert messages[0].internal_date == 896793721
