"""A repository under S3 Object Lock in a real SeaweedFS bucket: what it writes is retained, prune
keeps what the lock still holds and deletes it for good once the retention ends, and someone with
the repository's own credentials can hide the backups but not destroy them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from cps.config import S3Location
from cps.repository.naming import key_kind
from cps.store import MailDatabase
from tests.conftest import run_cps
from tests.integration.protect_helpers import QUICK, Oracle, protecting, wait_until, workload
from tests.s3_server import S3Server

LOCKED_BUCKET = "cps-locked"
RETAINED_KINDS = {"config", "pack", "database", "point", "chain", "full", "segment"}


@pytest.fixture
def locked_repository(s3_server: S3Server, s3_repository: S3Location) -> S3Location:
    """A fresh prefix of a bucket made with Object Lock (and so versioning) enabled."""
    client = s3_server.client()
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    if LOCKED_BUCKET not in existing:
        client.create_bucket(Bucket=LOCKED_BUCKET, ObjectLockEnabledForBucket=True)
    return dataclasses.replace(s3_repository, bucket=LOCKED_BUCKET)


def prune(repo: S3Location) -> dict[str, Any]:
    result = run_cps("prune", repo, "--keep-within", "0s", "--keep-daily", "0", "--keep-weekly",
                     "0", "--json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def versions(server: S3Server, repo: S3Location) -> list[dict[str, Any]]:
    """Every version and delete marker under the repository's prefix, each with `Kind`."""
    client, found = server.client(), []
    for page in client.get_paginator("list_object_versions").paginate(
            Bucket=repo.bucket, Prefix=f"{repo.prefix}/"):
        found += [{**item, "Marker": False} for item in page.get("Versions", [])]
        found += [{**item, "Marker": True} for item in page.get("DeleteMarkers", [])]
    return [{**item, "Kind": key_kind(item["Key"].removeprefix(f"{repo.prefix}/"))}
            for item in found]


def protected_with_points(repo: S3Location, folder: Path) -> Oracle:
    db = folder / "mail.db"
    MailDatabase.create(db).close()
    oracle = Oracle(db, repo, folder)
    with protecting(db, repo, *QUICK, "--full-every", "1s") as protector:
        for step in range(3):
            workload(db, ops=25, seed=step)
            oracle.point(f"p{step}")
            protector.wait_for("full-backup", count=step + 1)
        protector.stop()
    return oracle


def test_object_lock_is_refused_where_it_cannot_hold(s3_repository: S3Location,
                                                     tmp_path: Path) -> None:
    unlocked = run_cps("repo", "init", s3_repository, "--object-lock", "1d", check=False)
    assert unlocked.returncode == 10
    assert b"does not have Object Lock enabled" in unlocked.stderr
    assert b"--object-lock-enabled-for-bucket" in unlocked.stderr
    folder = run_cps("repo", "init", tmp_path / "repo", "--object-lock", "1d", check=False)
    assert folder.returncode == 10 and b"needs an S3 bucket" in folder.stderr


def test_credentials_of_the_mail_host_cannot_destroy_locked_backups(
        s3_server: S3Server, locked_repository: S3Location, tmp_path: Path) -> None:
    created = json.loads(run_cps("repo", "init", locked_repository, "--object-lock", "1d",
                                 "--json").stdout)
    assert created["object_lock"] == {"mode": "COMPLIANCE", "seconds": 86400}
    oracle = protected_with_points(locked_repository, tmp_path)
    client = s3_server.client()
    stored = versions(s3_server, locked_repository)
    for item in stored:
        retention = client.head_object(Bucket=locked_repository.bucket, Key=item["Key"],
                                       VersionId=item["VersionId"]).get("ObjectLockMode")
        assert (retention == "COMPLIANCE") == (item["Kind"] in RETAINED_KINDS), item["Key"]

    pruned = prune(locked_repository)  # everything but the latest state is due to go ...
    assert pruned["retained_files"] and pruned["deleted_points"] == 0  # ... and the lock keeps it
    oracle.check_points()

    # Someone holding the same credentials deletes every version, then every object.
    retained = [item for item in versions(s3_server, locked_repository)
                if item["Kind"] in RETAINED_KINDS]
    assert len(retained) >= len([item for item in stored if item["Kind"] in RETAINED_KINDS])
    for item in retained:
        with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
            client.delete_object(Bucket=locked_repository.bucket, Key=item["Key"],
                                 VersionId=item["VersionId"])
    for item in versions(s3_server, locked_repository):
        if not item["Marker"]:
            client.delete_object(Bucket=locked_repository.bucket, Key=item["Key"])
    hidden = run_cps("timeline", locked_repository, check=False)
    assert hidden.returncode == 10 and b"no CPS repository" in hidden.stderr

    # The bytes are still there: removing the delete markers (docs/storage.md) brings it all back.
    for item in versions(s3_server, locked_repository):
        if item["Marker"]:
            client.delete_object(Bucket=locked_repository.bucket, Key=item["Key"],
                                 VersionId=item["VersionId"])
    oracle.check_points()
    oracle.check_latest()


def test_prune_deletes_every_version_once_the_retention_ends(
        s3_server: S3Server, locked_repository: S3Location, tmp_path: Path) -> None:
    run_cps("repo", "init", locked_repository, "--object-lock", "2s")
    oracle = protected_with_points(locked_repository, tmp_path)
    written = time.time()
    results: list[dict[str, Any]] = []

    def pruned_after_the_retention() -> bool:
        if time.time() - written <= 2:
            return False
        results.append(prune(locked_repository))
        return bool(results[-1]["deleted_points"])

    wait_until(pruned_after_the_retention, "a prune after the retention ended")
    deleted = {name.removeprefix(f"s3://{locked_repository.bucket}/")
               for name in results[-1]["files"]}
    assert deleted and not results[-1]["retained_files"]
    left = {item["Key"] for item in versions(s3_server, locked_repository)}
    assert not deleted & left, "a deleted file left a version or a delete marker behind"
    oracle.check_latest()
