"""Granular recovery against a real protected store: `cps protect` in its own process, real corpus
mail, the workload generator as the source of change and its log as the oracle. The history is
described in `granular_history.py`; every command runs as a real `cps` process."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cps.errors import RepositoryLocked
from cps.granular import mailboxes, open_snapshot, search, show_message
from cps.granular.browse import message_row
from cps.repository import Repository
from cps.repository.locks import hold
from cps.restore import Target, load_catalog, plan_restore, restore
from cps.store import MailDatabase, SearchQuery
from cps.store.transfer import Format, import_mail
from cps.store.workload import LogModel, database_content, mailbox_address, read_log
from tests.conftest import run_cps
from tests.golden import damage_every_page
from tests.integration.granular_history import (
    ALICE,
    CAROL,
    DAVE,
    History,
    comparable,
    expected_diff,
    live_history,
    mail_of,
    make_history,
    sha,
)
from tests.integration.protect_helpers import (
    QUICK,
    dump,
    finish,
    log_lines,
    protecting,
    start_workload,
    wait_until,
)

WORKLOAD_MAILBOXES = [mailbox_address(n) for n in range(1, 6)]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    corpus = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
    if not (corpus / "README.md").is_file():
        pytest.skip(f"the mail corpus is not at {corpus}")
    made = make_history(tmp_path_factory.mktemp("granular"), corpus)
    with protecting(made.db, made.repo, *QUICK):
        live_history(made)
        yield made


def test_recover_a_deleted_folder_while_mail_arrives(history: History) -> None:
    """alice/Projects, deleted after p2, comes back from p2 and from a time between p1 and p2:
    byte for byte, with flags and dates, once however often it is run, while the workload keeps
    delivering into the same store from another process."""
    projects = [e for e in history.before[ALICE] if e[1][:1] == ("Projects",)]
    assert len(projects) == 122
    corpus = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "enron" / "allen-p"
    originals = [sha(f.read_bytes()) for d in ("inbox", "notes_inbox", "straw")
                 for f in (corpus / d).iterdir()]
    assert Counter(e[2] for e in projects) == Counter(originals)

    log = history.folder / "during-recovery.jsonl"
    writer = start_workload(history.db, ops=300, seed=14, rate=100, log=log)
    try:
        wait_until(lambda: log_lines(log) >= 5, "the workload delivers")
        started = time.time()
        by_point = history.cps("recover", "--recovery-point", "p2", "--mailbox", ALICE,
                               "--folder", "Projects", "--into", history.db, "--batch", "50")
        by_time = history.cps("recover", "--at", history.between_p1_and_p2, "--mailbox", ALICE,
                              "--folder", "Projects", "--into", history.db)
        again = history.cps("recover", "--recovery-point", "p2", "--mailbox", ALICE,
                            "--folder", "Projects", "--into", history.db)
        ended = time.time()
    finally:
        finish(writer)
    assert any(started < r["committed_at"] < ended for r in read_log(log)), "no mail arrived meanwhile"

    assert by_point["point"]["txn"] == history.points["p2"]
    assert by_time["point"]["txn"] == history.points["p1"]
    assert (by_point["recover"]["recovered"], by_point["recover"]["batches"]) == (122, 3)
    assert (again["recover"]["recovered"], again["recover"]["skipped_present"]) == (0, 122)
    expected = [e[1:] for e in projects]
    with MailDatabase.open(history.db, readonly=True) as live:
        for label in ("p2", f"txn {history.points['p1']}"):
            root = ("Recovered Items", label)
            recovered = mail_of(live, ALICE, root)
            assert [e[1:] for e in recovered] == expected, label
            assert {f.path[2:] for f in live.folders(ALICE) if f.path[:2] == root} >= {
                ("Projects", "Empty")}
        logged = LogModel()
        for path in history.logs + [log]:
            for record in read_log(path):
                logged.apply(record)
        assert database_content(live, WORKLOAD_MAILBOXES) == logged.content()


def test_diff_between_points_is_what_the_workload_did(history: History) -> None:
    for start, end in (("p0", "p1"), ("p1", "p2")):
        diff = history.cps("diff", "--from", f"point:{start}", "--to", f"point:{end}")
        assert comparable(diff) == expected_diff(history.records(start), history.records(end))
        assert diff["from"]["txn"] == history.points[start]
        assert diff["to"]["txn"] == history.points[end]
    counts = diff["counts"]
    assert min(counts["messages_added"], counts["messages_deleted"], counts["messages_moved"],
               counts["flags_changed"], counts["folders_renamed"], counts["folders_deleted"]) > 0
    same = history.cps("diff", "--from", f"txn:{history.points['p2']}", "--to", "point:p2")
    assert not any(same["counts"].values())
    untouched = history.cps("diff", "--from", "point:p0", "--live", history.db, DAVE)
    assert not any(untouched["counts"].values())

    gone = history.cps("diff", "--from", "point:p2", "--to", "point:p3")
    assert gone["mailboxes_deleted"] == [CAROL]
    assert {(f["mailbox"], tuple(f["path"])) for f in gone["folders_deleted"]} >= {
        (ALICE, ("Projects",)), (ALICE, ("Projects", "inbox")), (ALICE, ("Projects", "Empty"))}
    deleted = Counter((m["mailbox"], m["sha256"]) for m in gone["messages_deleted"])
    assert deleted >= Counter((a, e[2]) for a in (ALICE, CAROL) for e in history.before[a]
                              if a == CAROL or e[1][:1] == ("Projects",))


def test_a_point_read_from_the_repository_is_the_restored_database(history: History,
                                                                   tmp_path: Path) -> None:
    """At recovery points, at a transaction between them and at times inside log segments
    (between two transactions' capture stamps), the point served through the VFS is, byte for
    byte, the database a restore of the same target writes; browsing it gives what browsing the
    restored file gives; and it passes PRAGMA integrity_check."""
    repo = Repository.open(history.repo)
    catalog = load_catalog(repo, "mail")
    inside = []
    for ref in catalog.chains[-1].segments:
        stamps = [(t.txn, t.time) for t in repo.read_segment("mail", ref).transactions]
        inside += [(txn, seen + (later - seen) // 2)
                   for (txn, seen), (_, later) in zip(stamps, stamps[1:], strict=False)
                   if later > seen]
    assert len(inside) >= 3
    middle = (history.points["p1"] + history.points["p2"]) // 2
    targets = [(Target("point", name), txn) for name, txn in history.points.items()]
    targets += [(Target("txn", middle), middle)]
    targets += [(Target("time", when), txn) for txn, when in inside[:: max(1, len(inside) // 3)][:3]]
    for number, (target, txn) in enumerate(targets):
        restored = restore(repo, plan_restore(catalog, target), tmp_path / f"restored-{number}.db")
        with open_snapshot(repo, "mail", target) as snapshot, \
                MailDatabase.open(restored.output, readonly=True) as expected:
            assert (snapshot.txn, snapshot.txn_time) == (restored.txn, restored.txn_time) == (
                txn, restored.txn_time), target
            image = snapshot.served.image
            assert image.read(0, image.size) == restored.output.read_bytes(), target
            seen = browse_everything(snapshot.database)
            assert seen == browse_everything(expected), target
            assert any(seen[key] for key in seen if key.startswith("search ")), "nothing found"
            check = snapshot.database.connection.execute("PRAGMA integrity_check").fetchall()
            assert check == [("ok",)], target


def browse_everything(database: MailDatabase) -> dict[str, Any]:
    """What browse, show and search say of every mailbox, folder and message."""
    seen: dict[str, Any] = {"mailboxes": [m.as_dict() for m in mailboxes(database)]}
    for box in seen["mailboxes"]:
        address = box["address"]
        for folder in database.folders(address):
            listed = database.messages(address, folder.path)
            seen[f"{address}/{'/'.join(folder.path)}"] = (
                folder, [message_row(m) for m in listed],
                [show_message(database, address, folder.path, str(m.uid)).as_dict()
                 for m in listed[:5]])
        seen[f"search {address}"] = [hit.as_dict() for hit in search(
            database, SearchQuery(text="enron", limit=500), mailbox=address)]
    return seen


def test_prune_waits_while_a_point_is_open(history: History) -> None:
    repo = Repository.open(history.repo)
    lock = history.repo / "locks" / "repository"
    with open_snapshot(repo, "mail", Target("point", "p1")) as snapshot:
        assert snapshot.label == "p1" and snapshot.txn == history.points["p1"]
        with pytest.raises(RepositoryLocked), hold(lock, exclusive=True):
            pass
    with hold(lock, exclusive=True):  # what prune takes: free again once the point is closed
        pass


def test_a_damaged_pack_is_a_clear_error(history: History, tmp_path: Path) -> None:
    """Every page record of every pack damaged, their indexes intact: the point opens, and the
    first page read from a pack fails as the repository error naming the pack."""
    copy = tmp_path / "repo"
    shutil.copytree(history.repo, copy, ignore=shutil.ignore_patterns("locks"))
    damage_every_page(Repository.open(copy))
    refused = run_cps("browse", copy, "--recovery-point", "p0", ALICE, check=False)
    assert refused.returncode == 14, refused.stderr
    assert b"the pack is damaged" in refused.stderr or b"cannot read the page" in refused.stderr
    assert b"Traceback" not in refused.stderr and b".pack" in refused.stderr


def test_browse_show_and_search_see_the_past(history: History) -> None:
    listing = history.cps("browse", "--recovery-point", "p2", f"{ALICE}/Projects/straw")
    assert len(listing["messages"]) == 8
    first = listing["messages"][0]
    tree = history.cps("browse", "--recovery-point", "p2", ALICE)
    assert {tuple(f["path"]): f["messages"] for f in tree["folders"]}[("Projects", "inbox")] == 66
    mailboxes = history.cps("browse", "--txn", str(history.points["p3"]))["mailboxes"]
    assert CAROL not in [m["address"] for m in mailboxes]

    raw = run_cps("show", history.repo, "--recovery-point", "p2",
                  f"{ALICE}/Projects/straw", str(first["uid"]), "--raw").stdout
    assert sha(raw) == first["sha256"]
    shown = history.cps("show", "--recovery-point", "p2", ALICE, first["message_id"])
    assert shown["message"]["folder"] == ["Projects", "straw"] and shown["message"]["text"]

    word = first["subject"].split()[0]
    then = history.cps("search", "--recovery-point", "p2", "--subject", word, "--mailbox", ALICE)
    now = history.cps("search", "--recovery-point", "p3", "--subject", word, "--mailbox", ALICE)
    assert first["sha256"] in [h["sha256"] for h in then["hits"]]
    assert not [h for h in now["hits"] if h["folder"][:1] == ["Projects"]]


def test_recover_a_purged_mailbox_and_export_it_in_every_format(history: History) -> None:
    restored = "carol.restored@example.com"
    run_cps("store", "mailbox", "create", history.db, restored)
    report = history.cps("recover", "--recovery-point", "p2", "--mailbox", CAROL, "--into",
                         history.db, "--target-mailbox", restored, "--merge")
    assert report["recover"]["recovered"] == len(history.before[CAROL]) == 56
    with MailDatabase.open(history.db, readonly=True) as live:
        assert [e[1:] for e in mail_of(live, restored)] == [e[1:] for e in history.before[CAROL]]

    for kind in Format.MAILDIR, Format.MBOX, Format.EML:
        target = history.folder / f"carol-{kind.value}"
        history.cps("recover", "--recovery-point", "p2", "--mailbox", CAROL,
                    "--export", kind.value, target)
        assert reimported(history.folder / f"carol-{kind.value}.db", target, kind) == Counter(
            (e[1], e[2]) for e in history.before[CAROL]), kind


def test_hostile_folder_names_stay_inside_the_export(history: History) -> None:
    originals = Counter((e[1], e[2]) for e in history.before[DAVE])
    for kind in Format.MAILDIR, Format.MBOX, Format.EML:
        target = history.folder / f"dave-{kind.value}"
        history.cps("recover", "--recovery-point", "p2", "--mailbox", DAVE,
                    "--export", kind.value, target)
        inside = os.path.realpath(target) + os.sep
        for folder, dirs, files in os.walk(target):
            for name in dirs + files:
                path = os.path.join(folder, name)
                assert not os.path.islink(path) and os.path.realpath(path).startswith(inside)
        back = reimported(history.folder / f"dave-{kind.value}.db", target, kind)
        assert Counter(s for _path, s in back.elements()) == Counter(
            s for _path, s in originals.elements())
        short = Counter({(p, s): n for (p, s), n in originals.items()
                         if all(len(name.encode()) < 200 for name in p)})
        assert back & short == short, kind


def test_errors_are_clear_and_leave_the_live_store_untouched(history: History) -> None:
    before = dump(history.db)
    early = history.refused("browse", "--at", "2000-01-01T00:00:00Z")
    assert early.returncode == 31 and b"hint: Restorable: transactions" in early.stderr
    early = history.refused("recover", "--at", "2000-01-01T00:00:00Z", "--mailbox", ALICE,
                            "--into", history.db)
    assert early.returncode == 31
    unknown = history.refused("recover", "--recovery-point", "p2", "--mailbox", "alise@example.com",
                              "--into", history.db)
    assert unknown.returncode == 5 and b"alice@example.com" in unknown.stderr
    folder = history.refused("browse", "--recovery-point", "p3", f"{ALICE}/Projects")
    assert folder.returncode == 5 and b"no folder Projects" in folder.stderr
    ambiguous = history.refused("recover", "--recovery-point", "p2", "--mailbox", ALICE,
                                "--message", history.ambiguous_message_id, "--into", history.db)
    assert ambiguous.returncode == 2 and b"Projects/inbox UID 1" in ambiguous.stderr
    assert b"Inbox UID 1" in ambiguous.stderr
    nobody = history.refused("recover", "--recovery-point", "p2", "--mailbox", ALICE,
                             "--into", history.db, "--target-mailbox", "nobody@example.com")
    assert nobody.returncode == 5 and b"--target-mailbox" in nobody.stderr
    no_point = history.refused("browse", "--recovery-point", "p9")
    assert no_point.returncode == 31 and b"'p3'" in no_point.stderr
    assert dump(history.db) == before


def reimported(db_path: Path, source: Path, kind: Format) -> Counter[tuple[tuple[str, ...], str]]:
    """Import an export into a fresh database: (folder path, sha256 of the bytes) of each message."""
    with MailDatabase.create(db_path) as db:
        report = import_mail(db, source, "x@example.com", ("Imported",), kind=kind,
                             create_mailbox=True)
        assert report.rejected == 0
        return Counter((e[1], e[2]) for e in mail_of(db, "x@example.com", ("Imported",)))
