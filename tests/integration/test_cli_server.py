"""The CLI's verbs against a running server (`--server URL --token-file F`): the same JSON, the
same files and the same error codes as against the repository, checked by running each verb
both ways on one store that `cps server` protects in its own process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cps.client import ServerClient
from cps.errors import ServerError
from cps.store import MailDatabase
from tests.conftest import run_cps
from tests.integration.granular_history import mail_of
from tests.integration.protect_helpers import dump
from tests.integration.server_run import (
    ServerProcess,
    make_token,
    protecting,
    running,
    site_for,
)

USER = "user001@example.com"


@dataclass
class Setup:
    folder: Path
    db: Path
    repo: Path
    server: ServerProcess
    operator_token: Path
    auditor_token: Path
    p1_dump: str  # the store when recovery point p1 was made (no writer runs in these tests)

    def remote(self, *args: str | Path, token: Path | None = None) -> list[str | Path]:
        return [*args, "--server", self.server.api, "--token-file", token or self.operator_token]

    def both(self, *args: str | Path) -> tuple[Any, Any]:
        """The JSON of a verb through the server, and from the repository (REPO after the
        verb's own subcommand words)."""
        through_server = json.loads(run_cps(*self.remote(*args), "--json").stdout)
        here = json.loads(run_cps(args[0], self.repo, *args[1:], "--json").stdout)
        return through_server, here


def token_file(setup_folder: Path, config: Path, name: str, role: str) -> Path:
    path = setup_folder / f"{name}.token"
    path.write_text(make_token(config, name, role) + "\n")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("cli-server")
    db, repo = folder / "mail.db", folder / "repo"
    run_cps("store", "create", db)
    run_cps("store", "workload", db, "--ops", "400", "--seed", "11")
    run_cps("repo", "init", repo)
    site = site_for(folder, {"mail": db}, repo, recovery_point_every="off")
    with running(site) as server:
        operator = token_file(folder, site.config, "olivia", "operator")
        auditor = token_file(folder, site.config, "audrey", "auditor")
        with server.client("auditor") as watcher:
            protecting(watcher, "mail")
        run_cps("store", "workload", db, "--ops", "60", "--seed", "12")  # after transaction 1
        run_cps("recovery-point", "create", "--name", "p1", "--server", server.api,
                "--token-file", operator)
        yield Setup(folder, db, repo, server, operator, auditor, dump(db))


def without_seconds(document: Any) -> Any:
    """A document but how long opening its points took, which depends on the opening."""
    if isinstance(document, dict):
        return {k: without_seconds(v) for k, v in document.items() if k != "seconds"}
    return document


def first_uid(setup: Setup) -> str:
    listing = json.loads(run_cps("browse", setup.repo, "--recovery-point", "p1",
                                 f"{USER}/Inbox", "--json").stdout)
    return str(listing["messages"][0]["uid"])


@pytest.mark.parametrize("args", [
    ("browse", "--recovery-point", "p1"),
    ("browse", "--recovery-point", "p1", USER),
    ("browse", "--recovery-point", "p1", f"{USER}/Inbox", "--limit", "3", "--offset", "1"),
    ("search", "--recovery-point", "p1", "--text", "the", "--limit", "5"),
    ("search", "--recovery-point", "p1", "--mailbox", USER, "--since", "2000-01-01"),
    ("diff", "--from", "txn:1", "--to", "point:p1"),
    ("diff", "--from", "txn:1", "--to", "point:p1", USER),
], ids=" ".join)
def test_a_read_verb_says_through_the_server_what_it_says_from_the_repository(
        setup: Setup, args: tuple[str, ...]) -> None:
    through_server, here = setup.both(*args)
    assert without_seconds(through_server) == without_seconds(here)


def test_show_gives_the_same_message_and_the_same_bytes(setup: Setup) -> None:
    uid = first_uid(setup)
    through_server, here = setup.both("show", "--recovery-point", "p1", f"{USER}/Inbox", uid)
    assert without_seconds(through_server) == without_seconds(here)
    raw = run_cps(*setup.remote("show", "--recovery-point", "p1", f"{USER}/Inbox", uid, "--raw"))
    local = run_cps("show", setup.repo, "--recovery-point", "p1", f"{USER}/Inbox", uid, "--raw")
    assert raw.stdout == local.stdout
    assert len(raw.stdout) == here["message"]["size"]


def test_the_timeline_through_the_server_is_the_repositorys(setup: Setup) -> None:
    through_server, here = setup.both("timeline")
    assert through_server["db_id"] == here["db_id"] == "mail"
    assert through_server["recovery_points"] == here["recovery_points"]
    assert [p["name"] for p in here["recovery_points"]] == ["p1"]
    assert [c["first_txn"] for c in through_server["chains"]] == [c["first_txn"]
                                                                   for c in here["chains"]]


def test_a_restore_through_the_server_is_the_database_at_its_target(setup: Setup,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "p1.db"
    result = json.loads(run_cps(*setup.remote("restore", "--recovery-point", "p1", "--to", out),
                                "--json").stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p1.db"]  # no -wal, no partial file
    assert dump(out) == setup.p1_dump
    assert result["output"] == str(out) and result["exact"] and result["db_id"] == "mail"

    with httpx.Client(base_url=setup.server.api) as plain:
        token = setup.operator_token.read_text().strip()
        jobs = plain.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).json()
    again = run_cps(*setup.remote("restore", "--recovery-point", "p1", "--to", out), check=False)
    assert again.returncode == 30 and b"already exists" in again.stderr
    with ServerClient(setup.server.api, token) as client:
        assert len(client.get("/api/v1/jobs")) == len(jobs), "a refused restore started a job"
        # A download that does not match the server's checksum is refused and leaves nothing.
        wrong = tmp_path / "wrong.db"
        with pytest.raises(ServerError, match="checksum"):
            client.download(f"/api/v1/jobs/{result['job']}/file", wrong, sha256="0" * 64)
        assert not wrong.exists()

    forced = run_cps(*setup.remote("restore", "--txn", "1", "--to", out, "--force"), "--json")
    assert json.loads(forced.stdout)["txn"] == 1
    assert dump(out) != setup.p1_dump


@pytest.mark.parametrize("kind, folder", [("mbox", "Inbox"), ("maildir", None), ("eml", None)])
def test_an_export_through_the_server_writes_the_files_a_local_one_does(
        setup: Setup, tmp_path: Path, kind: str, folder: str | None) -> None:
    where = ("--folder", folder) if folder else ()
    remote, local = tmp_path / "remote", tmp_path / "local"
    run_cps(*setup.remote("recover", "--recovery-point", "p1", "--mailbox", USER, *where,
                          "--export", kind, remote))
    run_cps("recover", setup.repo, "--recovery-point", "p1", "--mailbox", USER, *where,
            "--export", kind, local)
    files = sorted(p.relative_to(local) for p in local.rglob("*"))
    assert files, "the local export wrote nothing"
    assert sorted(p.relative_to(remote) for p in remote.rglob("*")) == files
    for name in files:
        if (local / name).is_file():
            assert (remote / name).read_bytes() == (local / name).read_bytes(), name


def test_a_recovery_through_the_server_brings_a_deleted_folder_back(setup: Setup,
                                                                    tmp_path: Path) -> None:
    with MailDatabase.open(setup.db, readonly=True) as live:
        before = mail_of(live, USER, ("Inbox",))
    assert before, "the workload left no mail in the Inbox"
    run_cps("store", "message", "delete", setup.db, f"{USER}/Inbox",
            *[str(uid) for uid in _uids(setup.db)])
    run_cps(*setup.remote("recover", "--recovery-point", "p1", "--mailbox", USER, "--folder",
                          "Inbox", "--merge", "--into", setup.db))
    with MailDatabase.open(setup.db, readonly=True) as live:
        assert mail_of(live, USER, ("Inbox",)) == before

    elsewhere = run_cps(*setup.remote("recover", "--recovery-point", "p1", "--mailbox", USER,
                                      "--into", tmp_path / "other.db"), check=False)
    assert elsewhere.returncode == 2
    assert f"the server's database mail is {setup.db}" in elsewhere.stderr.decode()


def _uids(db: Path) -> list[int]:
    with MailDatabase.open(db, readonly=True) as live, live.read():
        return [m.uid for m in live.messages(USER, ("Inbox",))]


def test_recovery_points_are_made_and_kept_through_the_server(setup: Setup) -> None:
    made = json.loads(run_cps(*setup.remote("recovery-point", "create", "--name",
                                            "before upgrade"), "--json").stdout)
    assert made["name"] == "before upgrade" and made["txn"] >= 1
    run_cps(*setup.remote("recovery-point", "keep", "before upgrade"))
    points = json.loads(run_cps("timeline", setup.repo, "--json").stdout)["recovery_points"]
    assert {p["name"]: p["keep"] for p in points}["before upgrade"] is True
    run_cps(*setup.remote("recovery-point", "keep", "before upgrade", "--off"))
    points = json.loads(run_cps("timeline", setup.repo, "--json").stdout)["recovery_points"]
    assert {p["name"]: p["keep"] for p in points}["before upgrade"] is False


def test_server_status_shows_each_database(setup: Setup) -> None:
    rows = json.loads(run_cps("server", "status", "--server", setup.server.api, "--token-file",
                              setup.auditor_token, "--json").stdout)
    assert [(r["db_id"], r["protection"]["condition"]) for r in rows] == [("mail", "protecting")]
    text = run_cps("server", "status", "--server", setup.server.api, "--token-file",
                   setup.auditor_token).stdout.decode()
    assert text.startswith("mail: protecting") and "last full backup: transaction" in text


def refused(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    result = run_cps(*args, check=False)
    assert result.returncode != 0, result.stdout
    return result


def test_errors_through_the_server_have_the_codes_they_have_here(setup: Setup,
                                                                 tmp_path: Path) -> None:
    far = ("restore", "--txn", "999999999", "--to", tmp_path / "x.db")
    remote = refused(*setup.remote(*far))
    local = refused(far[0], setup.repo, *far[1:])
    assert remote.returncode == local.returncode == 31
    assert remote.stderr.splitlines()[0] == local.stderr.splitlines()[0]

    auditor = refused(*setup.remote("browse", "--latest", token=setup.auditor_token))
    assert auditor.returncode == 51 and auditor.stderr.startswith(b"cps: error [access]: ")

    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-a-token\n")
    assert refused(*setup.remote("timeline", token=wrong)).returncode == 51

    unreachable = refused("timeline", "--server", "http://127.0.0.1:9", "--token-file", wrong)
    assert unreachable.returncode == 50
    assert b"cannot reach the CPS server at http://127.0.0.1:9" in unreachable.stderr

    both = refused("timeline", setup.repo, "--server", setup.server.api, "--token-file", wrong)
    assert both.returncode == 2 and b"give REPO or --server, not both" in both.stderr

    policy = refused(*setup.remote("prune", "--keep-daily", "3"))
    assert policy.returncode == 2 and b"--keep-daily cannot be used with --server" in policy.stderr


def test_prune_through_the_server_runs_its_policy(setup: Setup) -> None:
    result = json.loads(run_cps(*setup.remote("prune"), "--json").stdout)
    assert result["db_id"] == "mail" and result["kept_fulls"] >= 1
    points = json.loads(run_cps("timeline", setup.repo, "--json").stdout)["recovery_points"]
    assert "p1" in [p["name"] for p in points]  # within keep_within (7d): kept
