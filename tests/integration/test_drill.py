"""`cps drill` on repositories the real protector made: a protected workload passes, with every
recovery point restored to the transaction its reference copy was taken at; a bit flipped in a
segment or the packs gone fail it loudly, naming each failed point, and the failure is recorded;
an encrypted repository drills and keeps its record encrypted; the timeline, `cps verify repo`,
`cps repo copy` and prune handle the records; and the server drills on its schedule and through
its API, and exports the result as metrics."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cps.repository import DrilledPoint, DrillRecord, Repository
from cps.repository.format import FLAG_ENCRYPTED, HEADER
from cps.repository.prune import KEEP_DRILLS, Retention, prune
from tests.conftest import run_cps
from tests.fixtures.make_repos import flip, segment_of
from tests.integration.protect_helpers import (
    Oracle,
    protected_encrypted,
    protected_history,
    timeline,
)
from tests.integration.server_run import (
    answer,
    finished,
    mail_and_a_point,
    make_site,
    poll,
    running,
)
from tests.integration.server_run import (
    protecting as server_protecting,
)
from tests.mounts import read_only_view

PASSPHRASE = "drill passphrase"
SEED = "11"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    """A mail database protected through two full backups, with three recovery points p0..p2
    and their reference copies; the protector stopped."""
    return protected_history(tmp_path_factory.mktemp("history"))


@pytest.fixture
def repo(history: Oracle, tmp_path: Path) -> Path:
    return Path(shutil.copytree(history.repo, tmp_path / "repo"))


def drill(repo: Path, *options: str) -> tuple[subprocess.CompletedProcess[bytes], dict[str, Any]]:
    """`cps drill REPO --seed SEED --json`, whatever its exit status, and its report."""
    done = run_cps("drill", repo, "--seed", SEED, "--json", *options, check=False)
    return done, json.loads(done.stdout)


def text(*args: str | Path) -> str:
    """What `cps ARGS` prints for people, whatever its exit status."""
    return run_cps(*args, check=False).stdout.decode()


def records(repo: Path) -> list[DrillRecord]:
    found, unreadable = Repository.open(repo).drills("mail")
    assert unreadable == []
    return [record for _key, record in found]


def test_a_drill_of_a_protected_workload_passes_and_is_recorded(history: Oracle, repo: Path
                                                                ) -> None:
    done, report = drill(repo)

    assert done.returncode == 0, done.stderr
    points = report["points"]
    assert report["passed"] and all(p["passed"] and p["problem"] is None for p in points)
    assert [p["chosen"] for p in points].count("random") == 3
    assert {p["target"]: p["txn"] for p in points if p["chosen"].startswith("recovery point")} \
        == {f"point:{r.name}": r.txn for r in history.references}
    assert points[-1]["target"] == "latest"
    assert points[-1]["txn"] == timeline(repo)["latest_txn"]
    assert all(p["txn"] == int(p["target"][4:]) for p in points if p["chosen"] == "random")
    [record] = records(repo)
    assert record.passed and record.seed == int(SEED) and len(record.points) == len(points)
    assert Path(report["record_path"]).is_file()

    again, repeated = drill(repo)
    assert again.returncode == 0
    assert [p["target"] for p in repeated["points"]] == [p["target"] for p in points]
    shown = timeline(repo)["last_drill"]
    assert shown["passed"] and shown["points"] == len(points) and shown["failed"] == 0
    assert shown["drill_id"] == repeated["drill_id"]
    shown_text = text("timeline", repo)
    assert f"restore drill: passed at {shown['ended_at']}, {len(points)} points" in shown_text


def test_a_drill_over_a_damaged_segment_fails_loudly_and_is_recorded(history: Oracle, repo: Path,
                                                                     tmp_path: Path) -> None:
    """A bit flipped in the segment of the last point: the points that need it fail, each
    naming it, and exactly those are what `cps restore` refuses (the others may restore from a
    later full backup)."""
    segment = segment_of(repo, history.references[-1].txn)
    flip(segment)

    done, report = drill(repo)

    assert done.returncode == 32
    assert b"error [damaged]: the drill failed" in done.stderr
    assert f"cps verify repo {repo} --db mail --read-all".encode() in done.stderr
    failed = {p["target"]: p["problem"] for p in report["points"] if not p["passed"]}
    assert failed and all(segment.name in problem and "fails its checksum" in problem
                          for problem in failed.values())
    refused = set()
    for n, point in enumerate(report["points"]):
        kind, _colon, value = point["target"].partition(":")
        option = {"txn": ["--txn", value], "point": ["--recovery-point", value]}.get(kind,
                                                                                 ["--latest"])
        restored = run_cps("restore", repo, "--to", tmp_path / f"{n}.db", *option, check=False)
        assert restored.returncode in (0, 32)
        if restored.returncode:
            refused.add(point["target"])
    assert refused == set(failed)
    assert not report["passed"] and report["todo"]
    [record] = records(repo)
    assert not record.passed and {p.target for p in record.failed} == set(failed)
    first = next(p for p in report["points"] if not p["passed"])
    assert f"FAIL {first['target']} ({first['chosen']})" in text("drill", repo, "--seed", SEED)
    assert re.search(rf"restore drill: FAILED \({len(failed)} of \d+ points\) at .*; last "
                     r"passed: never", text("timeline", repo))


def test_a_drill_over_a_repository_without_its_packs_fails_every_point(repo: Path) -> None:
    for pack in repo.glob("packs/*/*.pack"):
        pack.unlink()

    done, report = drill(repo)

    assert done.returncode == 32
    assert report["points"] and not any(p["passed"] for p in report["points"])
    assert all("pack" in p["problem"] for p in report["points"])
    assert not records(repo)[0].passed


def test_the_records_are_checked_copied_and_pruned_to_the_newest(repo: Path, tmp_path: Path
                                                                 ) -> None:
    assert drill(repo)[0].returncode == 0
    checked = json.loads(run_cps("verify", "repo", repo, "--json").stdout)
    assert checked["clean"] and checked["checked"]["drill"] == 1
    mirror = tmp_path / "mirror"
    run_cps("repo", "copy", repo, mirror)
    [record] = sorted(repo.glob("databases/mail/drills/*.drill"))
    assert (mirror / record.relative_to(repo)).read_bytes() == record.read_bytes()

    flip(record)
    damaged = json.loads(run_cps("verify", "repo", repo, "--json", check=False).stdout)
    assert [f["kind"] for f in damaged["findings"]] == ["drill-record-damaged"]
    assert timeline(repo)["last_drill"] is None  # advisory: left out, not an error
    record.unlink()

    opened = Repository.open(repo)
    passed = DrillRecord("passed", 1000, 2000, 1, True, (DrilledPoint("latest", "latest", 9),))
    failing = DrillRecord("failing", 0, 0, 1, False, (DrilledPoint("latest", "latest", None,
                                                                   "refused"),))
    opened.write_drill("mail", passed)
    for n in range(KEEP_DRILLS + 2):
        opened.write_drill("mail", dataclasses.replace(failing, drill_id=f"f{n}",
                                                       started_at=3000 + n, ended_at=3000 + n))
    report = prune(opened, Retention(keep_within=10 * 365 * 86400))
    kept = [r.drill_id for r in records(repo)]
    assert kept == ["passed", *(f"f{n}" for n in range(2, KEEP_DRILLS + 2))]
    assert report.deleted_drills == 2


def test_an_encrypted_repository_drills_and_keeps_its_record_encrypted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    txn = protected_encrypted(tmp_path, PASSPHRASE, "encrypted")
    monkeypatch.setenv("CPS_PASSPHRASE", PASSPHRASE)

    done, report = drill(repo, "--points", "2")

    assert done.returncode == 0, done.stderr
    assert [p["txn"] for p in report["points"] if p["target"] == "point:encrypted"] == [txn]
    [record] = repo.glob("databases/mail/drills/*.drill")
    assert HEADER.unpack_from(record.read_bytes())[2] & FLAG_ENCRYPTED
    assert b"encrypted" not in record.read_bytes()  # the point's name is in the sealed record
    monkeypatch.delenv("CPS_PASSPHRASE")
    refused = run_cps("drill", repo, check=False)
    assert refused.returncode == 12


def test_the_server_drills_on_its_schedule_and_through_its_api(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"mail": ["alice@example.com"]}, drill_every="2s",
                     drill_points=2)
    with running(site) as server, server.client("operator") as api, \
            server.client("auditor") as auditor:
        mail_and_a_point(server, api, "mail", "alice@example.com", "one")
        scheduled = poll(lambda: [j for j in answer(auditor.get("/api/v1/jobs"), 200)
                                  if j["kind"] == "drill" and j["state"] == "done"],
                         bool, "a scheduled drill has run")
        assert scheduled[0]["requested_by"] == "schedule"
        assert scheduled[0]["result"]["passed"], scheduled[0]

        assert auditor.post("/api/v1/databases/mail/drills", json={}).status_code == 403
        job = finished(api, answer(api.post("/api/v1/databases/mail/drills",
                                            json={"points": 1, "seed": 4}), 202))
        assert job["state"] == "done" and job["result"]["passed"], job
        assert job["result"]["seed"] == 4
        assert [p["target"] for p in job["result"]["points"]].count("point:one") == 1
        listed = answer(auditor.get("/api/v1/databases/mail/drills"), 200)
        assert job["result"]["drill_id"] in [d["drill_id"] for d in listed]

        metrics = auditor.get("/metrics").text
        assert 'cps_drill_last_result{db="mail"} 1.0' in metrics
        stamp = re.search(r'cps_drill_last_success_timestamp_seconds\{db="mail"\} (\S+)', metrics)
        assert stamp is not None and float(stamp[1]) > 0
        state = answer(auditor.get("/api/v1/databases/mail"), 200)
        assert state["last_drill"]["passed"] and state["next_drill"] is not None
        server.stop()
    assert "Traceback" not in server.log()


def test_a_restarted_server_drills_drill_every_after_the_last_recorded_drill(tmp_path: Path
                                                                            ) -> None:
    site = make_site(tmp_path, {"mail": ["alice@example.com"]}, drill_every="1h")
    with running(site) as server, server.client("operator") as api:
        server_protecting(api, "mail")
        assert answer(api.get("/api/v1/databases/mail"), 200)["next_drill"] > time.time() + 3000
        job = finished(api, answer(api.post("/api/v1/databases/mail/drills"), 202))
        assert job["state"] == "done", job
    [(_key, record)] = Repository.open(site.repo).drills("mail")[0]
    with running(site) as server, server.client("auditor") as auditor:
        state = answer(auditor.get("/api/v1/databases/mail"), 200)
    assert state["next_drill"] == record.started_at / 1000 + 3600


def test_a_read_only_repository_drills_without_a_record(repo: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    with read_only_view(repo, tmp_path / "view") as view:
        unrecorded = run_cps("drill", view, "--no-record")
        refused = run_cps("drill", view, check=False)
    assert b"drill passed" in unrecorded.stdout and b"not recorded (--no-record)" in unrecorded.stdout
    assert refused.returncode == 40
    assert b"the drill of mail passed, but cannot be recorded" in refused.stderr
    assert b"--no-record" in refused.stderr
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before
