"""A repository in a bucket of a real S3 server (SeaweedFS), end to end through real `cps`
processes: protection judged against reference copies, restores, prune, and the granular recovery
of a deleted folder, all reading the bucket. The processes reach the bucket as a user's would:
credentials from the AWS environment variables, the endpoint from CPS_S3_ENDPOINT_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cps.config import S3Location
from cps.repository import Repository
from cps.repository.format import FLAG_COMPRESSED, FLAG_ENCRYPTED, HEADER
from cps.repository.storage import open_storage
from cps.store import MailDatabase
from tests.conftest import CORPUS, run_cps
from tests.integration.granular_history import ALICE, live_history, mail_of, make_history
from tests.integration.protect_helpers import (
    QUICK,
    Oracle,
    create_point,
    new_store,
    points_across_fulls,
    protecting,
    restore,
    timeline,
    workload,
)


def test_protection_into_a_bucket_restores_exactly_what_was_copied(
        s3_repository: S3Location, tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    new_store(db, s3_repository)
    oracle = points_across_fulls(Oracle(db, s3_repository, tmp_path), steps=4, seed=20261206,
                                 second_full_after=1)

    oracle.check_points(by_txn=True)
    oracle.check_latest()
    view = timeline(s3_repository)
    assert [p["txn"] for p in view["recovery_points"]] == [r.txn for r in oracle.references]

    stored = {entry.name for entry in open_storage(s3_repository).list("", recursive=True)}
    assert {"config", "databases/mail/database", "databases/mail/status"} <= stored
    assert any(name.startswith("databases/mail/chains/00000001/segments/") for name in stored)
    assert any(name.startswith("packs/") for name in stored)
    assert not list((tmp_path / "state").rglob("*.seg")), "the log went to the bucket, not here"


def test_prune_deletes_from_the_bucket_and_keeps_what_it_promises(
        s3_repository: S3Location, tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    new_store(db, s3_repository)
    oracle = Oracle(db, s3_repository, tmp_path)
    with protecting(db, s3_repository, *QUICK, "--full-every", "1s") as protector:
        workload(db, ops=40, seed=1)
        protector.wait_for("full-backup", count=2)
        workload(db, ops=40, seed=2)
        protector.stop()
    before = {e.name for e in open_storage(s3_repository).list("", recursive=True)}

    pruned = json.loads(run_cps("prune", s3_repository, "--keep-within", "0s", "--keep-daily",
                                "0", "--keep-weekly", "0", "--json").stdout)

    after = {e.name for e in open_storage(s3_repository).list("", recursive=True)}
    # The first full backup and the log after it, up to the second full, are needed by no kept
    # point any more.
    assert pruned["deleted_fulls"] >= 1 and pruned["deleted_segments"] >= 1
    deleted = {path.removeprefix(f"s3://{s3_repository.bucket}/{s3_repository.prefix}/")
               for path in pruned["files"]}
    assert deleted and deleted <= before and not deleted & after
    oracle.check_latest()


def test_a_deleted_folder_is_recovered_from_a_bucket(s3_repository: S3Location,
                                                     tmp_path: Path) -> None:
    """alice/Projects, deleted after p2, comes back from p2 read from the bucket, byte for byte,
    with flags and dates (granular_history.py tells the history)."""
    if not (CORPUS / "README.md").is_file():
        pytest.skip(f"the mail corpus is not at {CORPUS}")
    history = make_history(tmp_path, CORPUS, s3_repository)
    with protecting(history.db, s3_repository, *QUICK):
        live_history(history)
    projects = [e for e in history.before[ALICE] if e[1][:1] == ("Projects",)]
    assert len(projects) == 122

    result = history.cps("recover", "--recovery-point", "p2", "--mailbox", ALICE, "--folder",
                         "Projects", "--into", history.db)

    assert result["point"]["txn"] == history.points["p2"]
    assert result["recover"]["recovered"] == len(projects)
    with MailDatabase.open(history.db, readonly=True) as live:
        recovered = mail_of(live, ALICE, ("Recovered Items", "p2"))
    assert [e[1:] for e in recovered] == [e[1:] for e in projects]


def test_an_encrypted_repository_puts_no_plaintext_in_the_bucket(
        s3_repository: S3Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPS_PASSPHRASE", "correct horse battery staple")
    marker = "subject-" + "7f3a" * 8
    db = tmp_path / "mail.db"
    with MailDatabase.create(db) as database:
        database.create_mailbox("alice@example.com", "Alice")
    Repository.init(s3_repository, passphrase="correct horse battery staple")
    with protecting(db, s3_repository, *QUICK) as protector:
        with MailDatabase.open(db) as database:
            database.deliver(f"Subject: {marker}\r\n\r\n{marker} body\r\n".encode(),
                             ["alice@example.com"])
        create_point(db, s3_repository, "delivered")
        protector.stop()

    storage = open_storage(s3_repository)
    objects = {e.name: storage.get(e.name) for e in storage.list("", recursive=True)}
    assert any(name.startswith("databases/mail/chains/") for name in objects)
    for name, data in objects.items():
        assert marker.encode() not in data, name
        if name not in ("config", "key"):
            flags = HEADER.unpack_from(data)[2]
            assert flags == FLAG_COMPRESSED | FLAG_ENCRYPTED, f"{name} is not encrypted"
    restore(s3_repository, tmp_path / "restored.db", "--latest")
    with MailDatabase.open(tmp_path / "restored.db", readonly=True) as restored:
        assert [m.subject for m in restored.messages("alice@example.com", "Inbox")] == [marker]
