"""`cps repo copy` between a folder and a real S3 server (SeaweedFS), through real `cps`
processes: copies restore what the original restores, a copy killed part-way is finished by the
next one, damage at the source is reported and never copied, and a copy never writes into
another repository."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cps.config import Location, S3Location
from cps.repository import Repository
from cps.repository.copy import check_copied
from cps.repository.format import FLAG_ENCRYPTED, HEADER
from cps.repository.naming import key_kind
from cps.repository.storage import open_storage
from cps.store import MailDatabase
from tests.conftest import CPS, run_cps
from tests.integration.protect_helpers import (
    DEADLINE_SECONDS,
    QUICK,
    dump,
    protected_encrypted,
    protected_history,
    protecting,
    restore,
    wait_until,
    workload,
)
from tests.integration.server_run import (
    answer,
    finished,
    mail_and_a_point,
    make_site,
    poll,
    running,
)


def copy(source: Location, destination: Location, *options: str) -> dict[str, Any]:
    """`cps repo copy SRC DST --json`, which must succeed; its result."""
    result: dict[str, Any] = json.loads(
        run_cps("repo", "copy", source, destination, "--json", *options).stdout)
    return result


def files_of(location: Location) -> dict[str, bytes]:
    """Every repository file at `location` (no locks, no requests), by key."""
    storage = open_storage(location)
    return {e.name: storage.get(e.name) for e in storage.list("", recursive=True)
            if key_kind(e.name) is not None}


def test_a_copy_to_a_bucket_and_back_restores_what_the_original_restores(
        s3_repository: S3Location, tmp_path: Path) -> None:
    oracle = protected_history(tmp_path)
    original = files_of(oracle.repo)
    back = tmp_path / "back"

    up = copy(oracle.repo, s3_repository)
    down = copy(s3_repository, back)

    assert up["copied"] == down["copied"] == len(original) == up["files"]
    assert up["damaged"] == down["damaged"] == []
    assert files_of(s3_repository) == original and files_of(back) == original
    copied_back = dataclasses.replace(oracle, repo=back)
    copied_back.check_points(by_txn=True)
    copied_back.check_latest()

    again = copy(oracle.repo, s3_repository)
    assert again["copied"] == 0 and again["unchanged"] == len(original)


def test_a_copy_brings_an_earlier_copy_up_to_date(tmp_path: Path) -> None:
    oracle = protected_history(tmp_path)
    mirror = tmp_path / "mirror"
    first = copy(oracle.repo, mirror)
    with protecting(oracle.db, oracle.repo, *QUICK) as protector:
        workload(oracle.db, ops=30, seed=7)
        oracle.point("later")
        protector.stop()
    now = files_of(oracle.repo)
    new = set(now) - set(files_of(mirror))

    second = copy(oracle.repo, mirror)

    # The new segments and point, and the status, which the protector replaced.
    assert new and second["copied"] == len(new) + 1 and second["updated"] == 1
    assert second["unchanged"] == len(now) - len(new) - 1 and first["files"] < second["files"]
    assert files_of(mirror) == now
    dataclasses.replace(oracle, repo=mirror).check_latest()
    restored = restore(mirror, tmp_path / "later.db", "--recovery-point", "later")
    assert restored["txn"] == oracle.references[-1].txn


def test_an_encrypted_repository_is_copied_as_stored_without_its_passphrase(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passphrase = "correct horse battery staple"
    repo = tmp_path / "repo"
    protected_encrypted(tmp_path, passphrase, "encrypted")
    mirror = tmp_path / "mirror"

    result = copy(repo, mirror)

    copied = files_of(mirror)
    assert result["copied"] == len(copied) and copied == files_of(repo)
    assert all(HEADER.unpack_from(data)[2] & FLAG_ENCRYPTED for key, data in copied.items()
               if key not in ("config", "key"))
    refused = run_cps("restore", mirror, "--to", tmp_path / "no.db", "--latest", check=False)
    assert refused.returncode == 12
    monkeypatch.setenv("CPS_PASSPHRASE", passphrase)
    assert restore(mirror, tmp_path / "restored.db", "--recovery-point", "encrypted")["txn"]


def test_a_copy_killed_part_way_is_finished_by_the_next_one(s3_repository: S3Location,
                                                           tmp_path: Path) -> None:
    """A source of many packs, so that the copy into the bucket is still going when the test
    sees its first packs there and kills it."""
    oracle = protected_history(tmp_path)
    repo = Repository.open(oracle.repo)
    writer = repo.page_writer()
    rng = random.Random(7)
    for _ in range(600):  # packs of one page that no full backup uses: bulk only
        page = rng.randbytes(4096)
        writer.add(repo.page_id(page), page)
        writer.flush()
    original = files_of(oracle.repo)
    bucket = open_storage(s3_repository)
    process = subprocess.Popen([*CPS, "repo", "copy", str(oracle.repo), str(s3_repository)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(bucket.list("packs", recursive=True)) >= 5,
                   "the copy has put 5 packs into the bucket")
    finally:
        process.kill()
        process.communicate(timeout=DEADLINE_SECONDS)
    cut_short = files_of(s3_repository)
    assert "config" in cut_short and len(cut_short) < len(original), "the copy was not cut short"
    for key, data in cut_short.items():  # whole files only, each the source's
        assert data == original[key], key

    resumed = copy(oracle.repo, s3_repository)

    assert resumed["copied"] == len(original) - len(cut_short) < resumed["files"]
    assert resumed["unchanged"] == len(cut_short)
    assert files_of(s3_repository) == original
    dataclasses.replace(oracle, repo=s3_repository).check_latest()


def test_damage_at_the_source_is_reported_and_never_copied(tmp_path: Path) -> None:
    oracle = protected_history(tmp_path)
    source = open_storage(oracle.repo)
    keys = sorted(files_of(oracle.repo))
    segment = next(k for k in keys if key_kind(k) == "segment")
    pack = next(k for k in keys if key_kind(k) == "pack")
    for key, offset in ((segment, 40), (pack, 16 + 4 + 10)):  # a pack's first page record
        path = oracle.repo / key
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
    mirror = tmp_path / "mirror"

    result = run_cps("repo", "copy", oracle.repo, mirror, "--json", check=False)

    assert result.returncode == 14
    report = json.loads(result.stdout)
    assert len(report["damaged"]) == 2
    assert any(segment in message for message in report["damaged"])
    assert any(pack in message for message in report["damaged"])
    errors = result.stderr.decode()
    assert f"not copied: {source.describe(segment)}" in errors
    assert "cps: error [corrupt]: 2 files of" in errors
    copied = files_of(mirror)
    assert set(copied) == set(keys) - {segment, pack} and report["copied"] == len(copied)
    for key, data in copied.items():
        check_copied(key, key, key_kind(key) or "", data, encrypted=False)
        assert data == (oracle.repo / key).read_bytes()


def test_a_copy_never_writes_into_another_repository(tmp_path: Path) -> None:
    oracle = protected_history(tmp_path)
    other = tmp_path / "other"
    Repository.init(other)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine\n")
    before = {path: path.read_bytes() for path in (other / "config", stranger / "notes.txt")}

    refused = [run_cps("repo", "copy", oracle.repo, where, check=False)
               for where in (other, stranger)]

    for result, where in zip(refused, (other, stranger), strict=True):
        errors = result.stderr.decode()
        assert result.returncode == 10 and "nothing was copied" in errors, errors
        assert str(where) in errors
    assert sorted(p.name for p in other.iterdir() if p.name != "locks") == ["config"]
    assert sorted(p.name for p in stranger.iterdir()) == ["notes.txt"]
    assert {path: path.read_bytes() for path in before} == before


def test_a_damaged_copy_is_replaced_and_a_different_one_kept(tmp_path: Path) -> None:
    oracle = protected_history(tmp_path)
    mirror = tmp_path / "mirror"
    copy(oracle.repo, mirror)
    segments = sorted(k for k in files_of(oracle.repo) if key_kind(k) == "segment")
    truncated, replaced = mirror / segments[0], mirror / segments[1]
    truncated.write_bytes(truncated.read_bytes()[:-10])
    stranger = (mirror / segments[2]).read_bytes()  # a sound file, of another size
    assert len(stranger) != replaced.stat().st_size
    replaced.write_bytes(stranger)

    result = run_cps("repo", "copy", oracle.repo, mirror, "--json", check=False)

    assert result.returncode == 10, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["repaired"] == [str(truncated)] and report["conflicts"] == [str(replaced)]
    assert report["copied"] == 1 and report["damaged"] == []
    assert truncated.read_bytes() == (oracle.repo / segments[0]).read_bytes()
    assert replaced.read_bytes() == stranger
    assert f"kept: {replaced} differs" in result.stderr.decode()


def test_a_copy_of_one_database_takes_its_files_and_every_pack(tmp_path: Path) -> None:
    oracle = protected_history(tmp_path)
    other = tmp_path / "other.db"
    MailDatabase.create(other).close()
    with protecting(other, oracle.repo, *QUICK) as protector:
        workload(other, ops=10, seed=9)
        protector.stop()
    mirror = tmp_path / "mirror"
    unknown = run_cps("repo", "copy", oracle.repo, mirror, "--db", "nothing", check=False)
    assert unknown.returncode == 15 and "holds no database 'nothing'" in unknown.stderr.decode()
    assert not mirror.exists()

    result = copy(oracle.repo, mirror, "--db", "mail")

    source = files_of(oracle.repo)
    wanted = {k for k in source if not k.startswith("databases/") or
              k.startswith("databases/mail/")}
    assert set(files_of(mirror)) == wanted and result["copied"] == len(wanted)
    assert any(k.startswith("databases/other/") for k in source)
    dataclasses.replace(oracle, repo=mirror).check_latest()


def test_the_server_keeps_a_second_copy_on_schedule_and_through_its_api(tmp_path: Path) -> None:
    offsite = tmp_path / "offsite"
    site = make_site(tmp_path, {"mail": ["alice@example.com"]}, copy_to=str(offsite),
                     copy_every="2s")
    with running(site) as server, server.client("operator") as api, \
            server.client("auditor") as auditor:
        made = mail_and_a_point(server, api, "mail", "alice@example.com", "one")
        scheduled = poll(lambda: [j for j in answer(auditor.get("/api/v1/jobs"), 200)
                                  if j["kind"] == "copy" and j["state"] == "done"],
                         bool, "a scheduled copy has run")
        assert scheduled[0]["requested_by"] == "schedule"
        assert auditor.post("/api/v1/databases/mail/copies", json={}).status_code == 403
        job = finished(api, answer(api.post("/api/v1/databases/mail/copies"), 202))
        assert job["state"] == "done" and job["result"]["damaged"] == [], job
        state = answer(auditor.get("/api/v1/databases/mail"), 200)
        assert state["copy_to"] == str(offsite) and state["next_copy"] is not None
        server.stop()
    assert "Traceback" not in server.log()
    here, there = tmp_path / "here.db", tmp_path / "there.db"
    assert restore(site.repo, here, "--recovery-point", "one")["txn"] == made["txn"]
    assert restore(offsite, there, "--recovery-point", "one")["txn"] == made["txn"]
    assert dump(here) == dump(there)
