"""Mail at a point in time through the server's HTTP API: `cps server` in its own process
protecting the store of `granular_history.py` (real corpus mail, hostile folder names, recovery
points p0 to p3 made while it runs), asked over HTTP and checked against what the `cps` commands
say of the same points, against the corpus files and against the live store."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from cps.errors import RepositoryLocked
from cps.repository import Repository
from cps.repository.locks import hold
from cps.restore import Target
from cps.server.audit import AuditLog
from cps.server.open_points import OpenPoints
from cps.store import MailDatabase
from cps.store.transfer import Format, import_mail
from tests.conftest import CORPUS
from tests.integration.granular_history import (
    ALICE,
    CAROL,
    DAVE,
    HOSTILE_NAMES,
    History,
    live_history,
    mail_of,
    make_history,
    sha,
)
from tests.integration.protect_helpers import dump, wait_until
from tests.integration.server_run import (
    ServerProcess,
    answer,
    finished,
    protecting,
    running,
    site_for,
)

MAIL = "/api/v1/databases/mail/mail"
PROBLEM = "application/problem+json"
ALLEN = CORPUS / "enron" / "allen-p"


@dataclass
class Served:
    history: History
    server: ServerProcess
    operator: httpx.Client
    auditor: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The history made while the server protects the store; the server stopped by SIGTERM at
    the end, exiting 0 although points are still open."""
    if not (CORPUS / "README.md").is_file():
        pytest.skip(f"the mail corpus is not at {CORPUS} (set CPS_CORPUS)")
    history = make_history(tmp_path_factory.mktemp("server-mail"), CORPUS)
    site = site_for(history.folder, {"mail": history.db}, history.repo,
                    recovery_point_every="off")
    with running(site) as server:
        operator = server.new_client("olivia", "operator")
        auditor = server.new_client("audrey", "auditor")
        protecting(auditor, "mail")
        live_history(history)
        yield Served(history, server, operator, auditor)
        for client in (operator, auditor):
            client.close()
    assert "Traceback" not in server.stderr_path.read_text(), "the server failed on a request"


def mailbox(address: str) -> str:
    return f"{MAIL}/mailboxes/{quote(address, safe='')}"


def message(address: str, selector: str) -> str:
    return f"{mailbox(address)}/messages/{quote(selector, safe='')}"


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def without_seconds(point: dict[str, Any]) -> dict[str, Any]:
    """A point's description but how long it took to open, which depends on the opening."""
    return {key: value for key, value in point.items() if key != "seconds"}


def same_document(api: dict[str, Any], cli: dict[str, Any], *points: str) -> None:
    """The API's answer is the command's JSON: the same keys and values, the points (`points`
    name them) but how long each took to open."""
    assert {k: without_seconds(v) if k in points else v for k, v in api.items()} == {
        k: without_seconds(v) if k in points else v for k, v in cli.items()}


def unpaged(listing: dict[str, Any]) -> dict[str, Any]:
    """A folder's listing without its paging: the pages joined, or one page, are compared whole."""
    return {k: v for k, v in listing.items() if k not in ("total", "limit", "offset")}


# Browse, show, search and diff: what the commands say


def test_browse_show_and_search_are_what_the_cli_says(served: Served) -> None:
    history, op = served.history, served.operator
    point = {"point": "point:p2"}
    cli = history.cps("browse", "--recovery-point", "p2")
    same_document(ok(op.get(f"{MAIL}/mailboxes", params=point)), cli, "point")
    cli = history.cps("browse", "--recovery-point", "p2", ALICE)
    same_document(ok(op.get(f"{mailbox(ALICE)}/folders", params=point)), cli, "point")

    cli = history.cps("browse", "--recovery-point", "p2", f"{ALICE}/Projects/inbox")
    pages = [ok(op.get(f"{mailbox(ALICE)}/messages", params={
        **point, "folder": ["Projects", "inbox"], "limit": 25, "offset": offset}))
        for offset in (0, 25, 50, 75)]
    assert [len(page["messages"]) for page in pages] == [25, 25, 16, 0]
    assert {page["total"] for page in pages} == {66}
    assert len({page["point"]["seconds"] for page in pages}) == 1, "the point was opened again"
    listing = pages[0] | {"messages": [m for page in pages for m in page["messages"]]}
    same_document(unpaged(listing), unpaged(cli), "point")

    first = cli["messages"][0]
    by_uid = ok(op.get(message(ALICE, str(first["uid"])),
                       params={**point, "folder": ["Projects", "inbox"]}))
    by_id = ok(op.get(message(ALICE, first["message_id"]), params={**point, "folder": "Projects"}))
    cli = history.cps("show", "--recovery-point", "p2", f"{ALICE}/Projects/inbox",
                      str(first["uid"]))
    assert by_uid["message"] == by_id["message"]
    same_document(by_uid, cli, "point")
    assert by_uid["message"]["text"] and by_uid["message"]["sha256"] == first["sha256"]

    word = first["subject"].split()[0]
    cli = history.cps("search", "--recovery-point", "p2", "--subject", word, "--mailbox", ALICE,
                      "--folder", "Projects", "--since", "1990-01-01")
    hits = ok(op.get(f"{MAIL}/search", params={
        **point, "subject": word, "mailbox": ALICE, "folder": "Projects", "since": "1990-01-01"}))
    assert first["sha256"] in [hit["sha256"] for hit in hits["hits"]]
    same_document(hits, cli, "point")


def test_a_point_by_time_names_its_transaction(served: Served) -> None:
    history, op = served.history, served.operator
    at = history.between_p1_and_p2
    listed = ok(op.get(f"{MAIL}/mailboxes", params={"point": f"at:{at}"}))
    cli = history.cps("browse", "--at", at)
    assert listed["point"]["txn"] == history.points["p1"]
    assert listed["point"]["label"] == f"txn {history.points['p1']}"
    same_document(listed, cli, "point")
    by_txn = ok(op.get(f"{MAIL}/mailboxes", params={"point": f"txn:{history.points['p1']}"}))
    assert by_txn["mailboxes"] == listed["mailboxes"]


def test_hostile_folder_names_go_through_urls(served: Served) -> None:
    """Every folder of dave, named to break file systems and URLs, browsed through the API as
    the command line browses it, and each message's raw bytes the bytes stored."""
    history, op = served.history, served.operator
    point = {"point": "point:p2"}
    stored = Counter(entry[2] for entry in history.before[DAVE])
    folders = ok(op.get(f"{mailbox(DAVE)}/folders", params=point))["folders"]
    paths = [f["path"] for f in folders if set(f["path"]) & set(HOSTILE_NAMES)]
    assert len(paths) == len(HOSTILE_NAMES)
    fetched: Counter[str] = Counter()
    for path in paths:
        listed = ok(op.get(f"{mailbox(DAVE)}/messages", params={**point, "folder": path}))
        cli = history.cps("browse", "--recovery-point", "p2", "/".join((DAVE, *path)))
        same_document(unpaged(listed), unpaged(cli), "point")
        for row in listed["messages"]:
            raw = op.get(message(DAVE, str(row["uid"])), params={**point, "folder": path,
                                                                 "raw": "true"})
            assert raw.headers["content-type"] == "message/rfc822"
            assert raw.headers["x-content-type-options"] == "nosniff"
            fetched[sha(raw.content)] += 1
    assert fetched == stored and len(stored) == len(HOSTILE_NAMES)


def test_a_message_id_with_slashes_at_a_point_named_with_one(served: Served) -> None:
    """A point made through the API under a name with '/', and a Message-ID with '/' and '..' in
    the URL path: both reach the store as they are."""
    op = served.operator
    raw = b"Subject: slashes\r\nMessage-ID: <a/../b/c@example.org>\r\n\r\nslashes\r\n"
    with MailDatabase.open(served.history.db) as live:
        live.deliver(raw, [DAVE])
    made = op.post("/api/v1/databases/mail/recovery-points", json={"name": "with/slash"})
    assert made.status_code == 201, made.text
    shown = ok(op.get(message(DAVE, "<a/../b/c@example.org>"), params={"point": "point:with/slash"}))
    assert shown["point"]["label"] == "with/slash" and shown["point"]["txn"] == made.json()["txn"]
    assert shown["message"]["folder"] == ["Inbox"] and shown["message"]["sha256"] == sha(raw)


def test_diff_is_what_the_cli_says_whichever_way_round(served: Served) -> None:
    history, op = served.history, served.operator
    forth = {"from": "point:p0", "to": "point:p1"}
    back = {"from": "point:p1", "to": "point:p0"}
    # Both ways at once, several times: the two points are taken in one order whoever asks.
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda params: ok(op.get(f"{MAIL}/diff", params=params)),
                                [forth, back] * 3))
    cli = history.cps("diff", "--from", "point:p0", "--to", "point:p1")
    assert cli["counts"]["messages_added"] > 0
    for diff in answers[::2]:
        same_document(diff, cli, "from", "to")
    for diff in answers[1::2]:
        assert diff["counts"]["messages_added"] == cli["counts"]["messages_deleted"]
        assert diff["messages_deleted"] == cli["messages_added"]

    live = ok(op.get(f"{MAIL}/diff", params={"from": "point:p0", "live": "true",
                                             "mailbox": CAROL}))
    cli = history.cps("diff", "--from", "point:p0", "--live", history.db, CAROL)
    assert live["mailboxes_deleted"] == [CAROL] and live["to"] == {"live": str(history.db)}
    same_document(live, cli, "from")


# Recoveries and exports


def test_a_deleted_folder_is_recovered_into_the_live_store(served: Served) -> None:
    """alice/Projects, deleted after p2, comes back from p2 into 'Recovered Items/p2': the
    corpus files byte for byte, with their folders, flags and dates; a second run adds nothing."""
    history, op = served.history, served.operator
    body = {"point": "point:p2", "mailbox": ALICE, "folder": ["Projects"]}
    job = finished(op, answer(op.post(f"{MAIL}/recoveries", json=body), 202))
    assert job["state"] == "done", job
    assert job["kind"] == "recover" and job["params"]["txn"] == history.points["p2"]
    assert (job["result"]["recover"]["recovered"], job["result"]["point"]["label"]) == (122, "p2")

    originals = [f.read_bytes() for d in ("inbox", "notes_inbox", "straw")
                 for f in (ALLEN / d).iterdir()]
    projects = [e[1:] for e in history.before[ALICE] if e[1][:1] == ("Projects",)]
    root = ("Recovered Items", "p2")
    with MailDatabase.open(history.db, readonly=True) as live:
        recovered = [live.fetch_raw(m.id) for f in live.folders(ALICE) if f.path[:2] == root
                     for m in live.messages(ALICE, f.path)]
        assert [e[1:] for e in mail_of(live, ALICE, root)] == projects
        assert ("Recovered Items", "p2", "Projects", "Empty") in [f.path for f in live.folders(ALICE)]
    assert Counter(recovered) == Counter(originals)

    again = finished(op, answer(op.post(f"{MAIL}/recoveries", json=body), 202))
    assert (again["result"]["recover"]["recovered"],
            again["result"]["recover"]["skipped_present"]) == (0, 122)


def export(served: Served, body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """An export job run to its end, and the file it made, downloaded."""
    op = served.operator
    accepted = op.post(f"{MAIL}/exports", json=body)
    job = finished(op, answer(accepted, 202))
    assert job["state"] == "done", job
    file = Path(job["result"]["file"])
    folder = served.history.folder / "state" / "jobs" / job["id"]
    assert file.parent == folder and [p.name for p in folder.iterdir()] == [file.name]
    download = op.get(accepted.json()["links"]["file"])
    assert download.status_code == 200, download.text
    assert download.content == file.read_bytes()
    return job, download.content


def test_exports_download_as_mbox_and_as_zips_of_eml(served: Served, tmp_path: Path) -> None:
    history = served.history
    straw = [f.read_bytes() for f in (ALLEN / "straw").iterdir()]
    job, data = export(served, {"point": "point:p2", "mailbox": ALICE,
                                "folder": ["Projects", "straw"], "format": "mbox"})
    assert Path(job["result"]["file"]).name == "straw.mbox"  # as a local export names it
    assert reimported(tmp_path / "straw", data, Format.MBOX) == Counter(map(sha, straw))

    job, data = export(served, {"point": "point:p2", "mailbox": ALICE, "folder": ["Projects"],
                                "format": "eml"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
        assert "Empty/" in archive.namelist()
    expected = {}
    for sub in ("inbox", "notes_inbox", "straw"):
        listed = history.cps("browse", "--recovery-point", "p2", f"{ALICE}/Projects/{sub}")
        expected |= {f"{sub}/{m['uid']}.eml": m["sha256"] for m in listed["messages"]}
    assert {name: sha(raw) for name, raw in files.items()} == expected
    assert Counter(files.values()) == Counter(f.read_bytes() for d in ("inbox", "notes_inbox",
                                                                        "straw")
                                              for f in (ALLEN / d).iterdir())
    assert job["result"]["export"]["messages"] == 122


def test_an_export_of_hostile_names_stays_inside_its_zip(served: Served, tmp_path: Path) -> None:
    """dave's whole mailbox, as mbox files and as .eml files: no name in the zip leaves it, and
    every message comes back."""
    stored = Counter(entry[2] for entry in served.history.before[DAVE])
    for kind in Format.MBOX, Format.EML:
        _job, data = export(served, {"point": "point:p2", "mailbox": DAVE, "format": kind.value})
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                parts = PurePosixPath(name).parts
                assert not PurePosixPath(name).is_absolute() and ".." not in parts, name
            archive.extractall(tmp_path / kind.value)
        back = reimported(tmp_path / f"{kind.value}-again", tmp_path / kind.value, kind)
        assert back == stored, kind


def reimported(folder: Path, source: bytes | Path, kind: Format) -> Counter[str]:
    """The SHA-256 of each message an export holds, read back by the store's own importer."""
    folder.mkdir()
    if isinstance(source, bytes):
        (folder / "export.mbox").write_bytes(source)
        source = folder / "export.mbox"
    with MailDatabase.create(folder / "back.db") as db:
        report = import_mail(db, source, "x@example.com", ("Imported",), kind=kind,
                             create_mailbox=True)
        assert report.rejected == 0
        return Counter(e[2] for e in mail_of(db, "x@example.com"))


# Who may see mail, and the audit log


def mail_requests(history: History) -> list[tuple[str, str, dict[str, Any]]]:
    """One request to every mail endpoint, each one an operator may make."""
    point = {"point": "point:p2"}
    inbox = {**point, "folder": ["Projects", "inbox"]}
    body = {"point": "point:p2", "mailbox": DAVE}
    return [
        ("GET", f"{MAIL}/mailboxes", {"params": point}),
        ("GET", f"{mailbox(ALICE)}/folders", {"params": point}),
        ("GET", f"{mailbox(ALICE)}/messages", {"params": inbox}),
        ("GET", message(ALICE, "1"), {"params": inbox}),
        ("GET", message(ALICE, "1"), {"params": {**inbox, "raw": "true"}}),
        ("GET", f"{MAIL}/search", {"params": {**point, "text": "enron", "mailbox": ALICE}}),
        ("GET", f"{MAIL}/diff", {"params": {"from": "point:p0", "to": "point:p1"}}),
        ("POST", f"{MAIL}/recoveries", {"json": {**body, "target_mailbox": ALICE, "merge": True}}),
        ("POST", f"{MAIL}/exports", {"json": body | {"format": "eml"}}),
    ]


def test_the_mail_endpoints_are_described(served: Served) -> None:
    described = ok(served.operator.get("/openapi.json"))["paths"]
    assert {path.replace("/api/v1/databases/{db_id}", "") for path in described
            if "/mail/" in path} == {
        "/mail/mailboxes", "/mail/mailboxes/{address}/folders",
        "/mail/mailboxes/{address}/messages", "/mail/mailboxes/{address}/messages/{selector}",
        "/mail/search", "/mail/diff", "/mail/recoveries", "/mail/exports"}


def test_an_auditor_never_sees_mail(served: Served) -> None:
    before = dump(served.history.db)
    for method, url, options in mail_requests(served.history):
        refused = served.auditor.request(method, url, **options)
        assert refused.status_code == 403, (url, refused.text)
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "forbidden" and "operator" in refused.json()["detail"]
    nobody = httpx.get(served.server.api + f"{MAIL}/mailboxes", params={"point": "latest"})
    assert nobody.status_code == 401 and nobody.json()["code"] == "unauthorized"
    assert dump(served.history.db) == before
    audit = AuditLog(served.history.folder / "state").entries()
    assert not [e for e in audit if e["who"] == "audrey"]


def test_every_look_at_mail_is_in_the_audit_log(served: Served) -> None:
    with served.server.new_client("reggie", "operator") as reader:
        for method, url, options in mail_requests(served.history):
            reply = reader.request(method, url, **options)
            assert reply.status_code in (200, 202), (url, reply.text)
            if reply.status_code == 202:
                assert finished(reader, reply.json())["state"] == "done"
        refused = reader.get(f"{MAIL}/mailboxes", params={"point": "point:nope"})
        assert refused.status_code == 422  # nothing was seen: nothing to write down
    entries = [e for e in AuditLog(served.history.folder / "state").entries()
               if e["who"] == "reggie"]
    assert [e["action"] for e in entries] == [
        "browse", "browse", "browse", "show", "show", "search", "diff", "recover", "export"]
    p2 = served.history.points["p2"]
    assert all(e["role"] == "operator" and e["db"] == "mail" for e in entries)
    assert [(e["point"], e["txn"]) for e in entries if e["action"] != "diff"] == [("p2", p2)] * 8
    shown = entries[3]
    assert (shown["mailbox"], shown["folder"], shown["uid"], shown["raw"]) == (
        ALICE, ["Projects", "inbox"], 1, False)
    assert shown["message_id"].startswith("<") and entries[4]["raw"] is True
    assert (entries[5]["text"], entries[5]["mailbox"]) == ("enron", ALICE)
    assert entries[5]["hits"] > 0
    assert entries[6]["point"] == "p0" and entries[6]["to"] == "p1"
    assert entries[7]["job"] and entries[7]["target_mailbox"] == ALICE and entries[7]["merge"]
    assert entries[8]["job"] and entries[8]["format"] == "eml"


# Requests that cannot be served


AMBIGUOUS = "the Message-ID of two messages"  # known once the history is made
BAD_REQUESTS = [
    # (what, method, url, options, status, code)
    ("unreadable point", "GET", f"{MAIL}/mailboxes", {"params": {"point": "txn:abc"}}, 400, "usage"),
    ("no point", "GET", f"{MAIL}/mailboxes", {}, 400, "usage"),
    ("a time no date holds", "GET", f"{MAIL}/mailboxes",
     {"params": {"point": "at:99999999999999999999d ago"}}, 400, "usage"),
    ("before every capture", "GET", f"{MAIL}/mailboxes",
     {"params": {"point": "at:2000-01-01T00:00:00Z"}}, 422, "not-covered"),
    ("past the last transaction", "GET", f"{MAIL}/mailboxes",
     {"params": {"point": "txn:99999999999999999999"}}, 422, "not-covered"),
    ("no such recovery point", "GET", f"{MAIL}/mailboxes", {"params": {"point": "point:p9"}},
     422, "not-covered"),
    ("unknown database", "GET", "/api/v1/databases/nope/mail/mailboxes",
     {"params": {"point": "latest"}}, 404, "missing-database"),
    ("unknown mailbox", "GET", f"{mailbox('alise@example.com')}/folders",
     {"params": {"point": "latest"}}, 404, "not-found"),
    ("not an address", "GET", f"{mailbox('alice')}/folders", {"params": {"point": "latest"}},
     400, "invalid-name"),
    ("a folder gone at that point", "GET", f"{mailbox(ALICE)}/messages",
     {"params": {"point": "point:p3", "folder": "Projects"}}, 404, "not-found"),
    ("no folder to list", "GET", f"{mailbox(ALICE)}/messages", {"params": {"point": "latest"}},
     400, "usage"),
    ("a name with '/'", "GET", f"{mailbox(ALICE)}/messages",
     {"params": {"point": "latest", "folder": "Projects/inbox"}}, 400, "invalid-name"),
    ("a name '..'", "GET", f"{mailbox(ALICE)}/messages",
     {"params": {"point": "latest", "folder": ".."}}, 400, "invalid-name"),
    ("a negative offset", "GET", f"{mailbox(ALICE)}/messages",
     {"params": {"point": "latest", "folder": "Inbox", "offset": -1}}, 400, "usage"),
    ("an offset SQLite cannot take", "GET", f"{mailbox(ALICE)}/messages",
     {"params": {"point": "latest", "folder": "Inbox", "offset": 10**20}}, 400, "usage"),
    ("a huge limit", "GET", f"{mailbox(ALICE)}/messages",
     {"params": {"point": "latest", "folder": "Inbox", "limit": 10**6}}, 400, "usage"),
    ("a limit that is no number", "GET", f"{mailbox(ALICE)}/messages",
     {"params": {"point": "latest", "folder": "Inbox", "limit": "ten"}}, 400, "usage"),
    ("no such UID", "GET", message(ALICE, "999999"),
     {"params": {"point": "latest", "folder": "Inbox"}}, 404, "not-found"),
    ("a UID past any", "GET", message(ALICE, "9" * 30),
     {"params": {"point": "latest", "folder": "Inbox"}}, 400, "usage"),
    ("a digit int() refuses", "GET", message(ALICE, "²"),
     {"params": {"point": "latest", "folder": "Inbox"}}, 400, "usage"),
    ("a UID without its folder", "GET", message(ALICE, "1"), {"params": {"point": "latest"}},
     400, "usage"),
    ("a search filter misspelt", "GET", f"{MAIL}/search",
     {"params": {"point": "latest", "txt": "enron"}}, 400, "usage"),
    ("a search time no date holds", "GET", f"{MAIL}/search",
     {"params": {"point": "latest", "since": "99999999999999999999d ago"}}, 400, "usage"),
    ("a folder without its mailbox", "GET", f"{MAIL}/search",
     {"params": {"point": "latest", "folder": "Inbox"}}, 400, "usage"),
    ("both to and live", "GET", f"{MAIL}/diff",
     {"params": {"from": "point:p0", "to": "latest", "live": "true"}}, 400, "usage"),
    ("neither to nor live", "GET", f"{MAIL}/diff", {"params": {"from": "point:p0"}}, 400, "usage"),
    ("a misspelt recovery key", "POST", f"{MAIL}/recoveries",
     {"json": {"point": "point:p2", "mailbox": ALICE, "folders": ["Projects"]}}, 400, "usage"),
    ("a target mailbox that does not exist", "POST", f"{MAIL}/recoveries",
     {"json": {"point": "point:p2", "mailbox": ALICE, "target_mailbox": "nobody@example.com"}},
     404, "not-found"),
    ("a folder missing at the point", "POST", f"{MAIL}/recoveries",
     {"json": {"point": "point:p2", "mailbox": ALICE, "folder": ["Projets"]}}, 404, "not-found"),
    ("a Message-ID found twice", "POST", f"{MAIL}/recoveries",
     {"json": {"point": "point:p2", "mailbox": ALICE, "messages": [AMBIGUOUS]}}, 400, "usage"),
    ("an export format there is not", "POST", f"{MAIL}/exports",
     {"json": {"point": "point:p2", "mailbox": ALICE, "format": "pdf"}}, 400, "usage"),
    ("an export of a mailbox gone", "POST", f"{MAIL}/exports",
     {"json": {"point": "point:p3", "mailbox": CAROL}}, 404, "not-found"),
    ("a body that is not JSON", "POST", f"{MAIL}/exports",
     {"content": b"{", "headers": {"content-type": "application/json"}}, 400, "usage"),
]


@pytest.mark.parametrize("what, method, url, options, status, code", BAD_REQUESTS,
                         ids=[row[0] for row in BAD_REQUESTS])
def test_bad_requests_are_problems_and_the_server_goes_on(
        served: Served, what: str, method: str, url: str, options: dict[str, Any], status: int,
        code: str) -> None:
    before = dump(served.history.db)
    if options.get("json", {}).get("messages") == [AMBIGUOUS]:
        options = {"json": options["json"] | {"messages": [served.history.ambiguous_message_id]}}
    refused = served.operator.request(method, url, **options)
    assert (refused.status_code, refused.headers["content-type"]) == (status, PROBLEM), \
        refused.text
    problem = refused.json()
    assert (problem["code"], problem["status"]) == (code, status) and problem["detail"]
    if code == "not-covered":
        assert "Restorable: transactions" in problem["hint"] or "'p3'" in problem["hint"]
    assert dump(served.history.db) == before
    assert served.operator.get("/api/v1/health").json()["status"] == "ok"
    assert ok(served.operator.get(f"{MAIL}/mailboxes", params={"point": "latest"}))["mailboxes"]


# Points kept open between requests


def test_open_points_are_shared_and_closed_when_idle(served: Served, tmp_path: Path) -> None:
    """On a copy of the repository nobody else reads: a point named two ways is one open point,
    which keeps prune waiting until it has been idle long enough; with too many open, the one
    idle the longest is closed; close() closes the rest."""
    history = served.history
    copy = tmp_path / "repo"
    shutil.copytree(history.repo, copy, ignore=shutil.ignore_patterns("locks"))
    repo, lock = Repository.open(copy), copy / "locks" / "repository"
    idle = OpenPoints(idle=3.0)
    p1 = Target("txn", history.points["p1"])
    with idle.use(repo, "mail", Target("point", "p1"), p1) as [named, numbered]:
        assert named is numbered
    assert not prune_may_run(lock)
    wait_until(lambda: prune_may_run(lock), "the idle point is closed")
    idle.close()

    few = OpenPoints(idle=600.0, most=2)
    p0, p1, p2 = (first_use(few, repo, Target("point", name)) for name in ("p0", "p1", "p2"))
    assert first_use(few, repo, Target("point", "p2")) is p2
    assert first_use(few, repo, Target("point", "p0")) is not p0  # idle the longest: closed
    assert first_use(few, repo, Target("point", "p2")) is p2
    assert first_use(few, repo, Target("point", "p1")) is not p1
    assert not prune_may_run(lock)
    few.close()
    assert prune_may_run(lock)


def first_use(points: OpenPoints, repo: Repository, target: Target) -> object:
    with points.use(repo, "mail", target) as [snapshot]:
        return snapshot


def prune_may_run(lock: Path) -> bool:
    try:
        with hold(lock, exclusive=True):
            return True
    except RepositoryLocked:
        return False
