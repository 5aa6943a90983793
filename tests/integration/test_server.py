"""`cps server` as a real process: its API (status, timelines, recovery points, restores as jobs),
who may use it (tokens, roles, the failure limit, the audit log), requests it must refuse, SIGTERM
and SIGKILL of the server and of a protector it supervises, zero-loss acknowledgements, errors in
its configuration, and its JSON log.

Mail goes in through the server's own SMTP and LMTP listeners; every restore that succeeds is
compared with a reference copy of the live database taken at the same state (the oracle of
protect_helpers), and every wait polls with a deadline."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from cps.repository import Repository
from cps.server.auth import FAILURES_ALLOWED
from cps.store.intake.server import WORKER_THREADS
from tests.conftest import run_cps
from tests.integration.intake_helpers import inbox_raws, inbox_received, make_database, message
from tests.integration.protect_helpers import (
    Reference,
    assert_same,
    at_argument,
    restore,
)
from tests.integration.server_run import (
    Sender,
    ServerProcess,
    Site,
    alive,
    answer,
    captured,
    deliver,
    finished,
    gone,
    make_site,
    make_token,
    point,
    point_and_copy,
    poll,
    protecting,
    restore_job,
    running,
    site_for,
    status,
    write_config,
)
from tests.mounts import fill, small_disk

ALICE, BOB = "alice@example.com", "bob@example.com"
PROBLEM = "application/problem+json"


def restores_to(api: httpx.Client, site: Site, db_id: str, reference: Reference,
                **target: object) -> dict[str, Any]:
    """A restore job of `target` through the API gives exactly the reference's content."""
    output = site.folder / f"restored-{len(list(site.folder.glob('restored-*')))}.db"
    job = restore_job(api, db_id, output, **target)
    assert_same(reference, output, f"restore of {db_id} to {target}")
    return job


def txn(reference: Reference) -> int:
    assert reference.txn is not None
    return reference.txn


def check_points(api: httpx.Client, site: Site, db_id: str, references: list[Reference]) -> None:
    for reference in references:
        job = restores_to(api, site, db_id, reference, recovery_point=reference.name)
        assert job["result"]["txn"] == reference.txn and job["result"]["exact"]


def assert_problem(response: httpx.Response, status_code: int) -> dict[str, Any]:
    """An RFC 9457 problem with `status_code`."""
    what = f"{response.request.method} {response.request.url}"
    assert response.status_code == status_code, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == PROBLEM, what
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status_code and problem["detail"], problem
    assert problem["type"] == f"urn:cps:error:{problem['code']}", problem
    return problem


# The API


def test_status_timeline_and_a_point_made_through_the_api_restore_exactly(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"mail01": [ALICE], "mail02": [BOB]})
    started = time.time()
    with running(site) as server, server.client("operator") as api:
        for db_id in site.databases:
            protecting(api, db_id)
        for n in range(3):
            assert deliver(server, "smtp", ALICE, message(f"first {n}"))
            assert deliver(server, "lmtp", BOB, message(f"to bob {n}"))
        one = point_and_copy(api, site, "mail01", "one")
        after_one = at_argument(int(time.time() * 1000))
        for n in range(2):
            assert deliver(server, "lmtp", ALICE, message(f"second {n}"))
        two = point_and_copy(api, site, "mail01", "two")
        bob = point_and_copy(api, site, "mail02", "bob")
        captured(api, "mail02", txn(bob))
        mail01 = captured(api, "mail01", txn(two))
        assert mail01["last_recovery_point"]["name"] == "two"
        assert mail01["last_recovery_point"]["txn"] == two.txn
        assert mail01["last_transaction"]["txn"] == txn(two) >= txn(one) + 2
        assert mail01["durable"]["txn"] == two.txn

        [first, second] = answer(api.get("/api/v1/databases"), 200)
        assert [first["db_id"], second["db_id"]] == ["mail01", "mail02"]
        for found in (first, second):
            assert found["path"] == str(site.databases[found["db_id"]])
            protection = found["protection"]
            assert (protection["condition"], protection["restarts"]) == ("protecting", 0)
            assert alive(protection["pid"])
            assert found["last_full"]["txn"] == 1 and found["last_full"]["time"] >= started
            assert started + 3500 < found["next_recovery_point"] < time.time() + 3600
            assert found["next_recovery_point_at"].startswith(time.strftime("%Y-"))

        history = answer(api.get("/api/v1/databases/mail01/timeline"), 200)
        assert history["latest_txn"] == two.txn
        [chain] = history["chains"]
        assert (chain["first_txn"], chain["holes"], chain["gap_before"]) == (1, [], None)
        assert [(p["name"], p["txn"]) for p in history["recovery_points"]] == \
            [("one", one.txn), ("two", two.txn)]

        check_points(api, site, "mail01", [one, two])
        assert restores_to(api, site, "mail01", one, at=after_one)["result"]["txn"] == one.txn
        restores_to(api, site, "mail01", one, txn=one.txn)
        restores_to(api, site, "mail01", two, latest=True)
        restores_to(api, site, "mail02", bob, latest=True)

        with server.client("auditor") as auditor:
            metrics = auditor.get("/metrics")
        assert metrics.status_code == 200
        assert 'cps_protector_up{db="mail01"} 1.0' in metrics.text
        assert f'cps_last_durable_transaction{{db="mail01"}} {float(txn(two))}' in metrics.text
        assert 'cps_protector_restarts_total{db="mail02"} 0.0' in metrics.text
        [written] = re.findall(r'^cps_captured_bytes_total\{db="mail01"\} (\S+)$', metrics.text,
                               re.MULTILINE)
        assert float(written) > 0
        server.stop()


# Who may do what


def test_tokens_roles_the_audit_log_and_the_failure_limit(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"mail": [ALICE]})
    carol = make_token(site.config, "carol", "operator")  # through the command line
    with running(site) as server, server.client("auditor") as auditor:
        protecting(auditor, "mail")
        refusals = [httpx.get(f"{server.api}/api/v1/databases"),
                    httpx.get(f"{server.api}/api/v1/databases", headers=bearer("cps_wrong")),
                    httpx.get(f"{server.api}/api/v1/databases", headers={
                        "Authorization": f"Basic {site.tokens['admin']}"})]
        for refused in refusals:
            assert assert_problem(refused, 401)["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
        for path, body in (("restores", {"latest": True}), ("recovery-points", {"name": "no"}),
                           ("full-backups", None)):
            forbidden = auditor.post(f"/api/v1/databases/mail/{path}", json=body)
            assert "operator" in assert_problem(forbidden, 403)["detail"]

        with httpx.Client(base_url=server.api, headers=bearer(carol)) as operator:
            made = point(operator, "mail", "by carol")
            job = restore_job(operator, "mail", tmp_path / "restored.db", latest=True)
        audit = [json.loads(line) for line in (site.state_dir / "audit.log").read_text().splitlines()]
        assert [(e["who"], e["role"], e["action"], e["db"]) for e in audit] == [
            ("carol", "operator", "recovery-point", "mail"), ("carol", "operator", "restore", "mail"),
            ("carol", "operator", "download", "mail")]
        assert (audit[0]["name"], audit[0]["txn"]) == ("by carol", made["txn"])
        assert (audit[1]["target"], audit[1]["job"]) == ("the latest captured transaction", job["id"])
        history = answer(auditor.get("/api/v1/databases/mail/timeline"), 200)
        assert [p["name"] for p in history["recovery_points"]] == ["by carol"]

        blocked = failures_until_blocked(server, len(refusals))
        assert blocked.headers["retry-after"].isdigit()
        assert 1 <= int(blocked.headers["retry-after"]) <= 61
        assert assert_problem(blocked, 429)["code"] == "too-many"
        # Refused whatever it presents now, a good token too; the health check needs none.
        assert_problem(auditor.get("/api/v1/databases"), 429)
        assert answer(httpx.get(f"{server.api}/api/v1/health"), 200)["status"] == "ok"
        checked = httpx.head(f"{server.api}/api/v1/health")
        assert (checked.status_code, checked.content) == (200, b"")
        server.stop()
    tokens = [carol, *site.tokens.values()]
    stored = json.loads((site.state_dir / "tokens.json").read_text())["tokens"]
    assert {t["sha256"] for t in stored} == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    for file in site.state_dir.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert not [t for t in tokens if t.encode() in content], f"a token is in {file}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def failures_until_blocked(server: ServerProcess, failed: int) -> httpx.Response:
    """Wrong tokens from this client, which `failed` were refused already, until the allowed
    number of failures; the response to the next request, which must be refused."""

    def guess() -> httpx.Response:
        return httpx.get(f"{server.api}/api/v1/jobs", headers=bearer("cps_guess"))

    for attempt in range(failed, FAILURES_ALLOWED):
        assert guess().status_code == 401, attempt
    return guess()


# Requests the API must refuse


BIG = 2 << 20  # bytes: twice what a request may carry
JSON = {"content-type": "application/json"}
MALFORMED: list[tuple[str, str, dict[str, Any], int]] = [
    # method, path, what httpx sends, the status
    ("POST", "restores", {"content": b'{"latest": tru', "headers": JSON}, 400),
    ("POST", "restores", {"content": b"[]", "headers": JSON}, 400),
    ("POST", "restores", {}, 400),
    ("POST", "restores", {"json": {}}, 400),
    ("POST", "restores", {"json": {"latest": True, "txn": 2}}, 400),
    ("POST", "restores", {"json": {"latest": True, "colour": "red"}}, 400),
    ("POST", "recovery-points", {"json": {"name": "extra", "keep": False, "when": "now"}}, 400),
    ("POST", "restores", {"json": {"txn": "many"}}, 400),
    ("POST", "restores", {"json": {"txn": "5"}}, 400),
    ("POST", "restores", {"json": {"txn": 5.0}}, 400),
    ("POST", "restores", {"json": {"latest": "yes"}}, 400),
    ("POST", "restores", {"json": {"latest": 1}}, 400),
    ("POST", "recovery-points", {"json": {"keep": "true"}}, 400),
    ("PATCH", "recovery-points/p", {"json": {"keep": "yes"}}, 400),
    ("PATCH", "recovery-points/never%20made", {"json": {"keep": True}}, 404),
    ("PATCH", "recovery-points/p", {"json": {"keep": True, "colour": 1}}, 400),
    ("POST", "full-backups", {"json": {"now": True}}, 400),
    ("POST", "prunes", {"json": {"keep_daily": 1}}, 400),
    ("POST", "restores", {"json": {"txn": 0}}, 400),
    ("POST", "restores", {"json": {"latest": [1]}}, 400),
    ("POST", "restores", {"json": {"at": 12}}, 400),
    ("POST", "recovery-points", {"json": {"name": 5}}, 400),
    ("POST", "recovery-points", {"json": {"name": "x" * 201}}, 400),
    ("POST", "restores", {"json": {"at": "yesterday at noon"}}, 400),
    ("POST", "restores", {"json": {"at": "0001-01-01"}}, 400),
    ("POST", "restores", {"json": {"at": "2001-01-01T00:00:00Z"}}, 422),
    ("POST", "restores", {"json": {"at": "9999-12-31T23:59:59Z"}}, 422),
    ("POST", "restores", {"json": {"at": "99999999999w ago"}}, 400),
    ("POST", "restores", {"json": {"txn": 10**6}}, 422),
    ("POST", "restores", {"json": {"txn": 10**30}}, 422),
    ("POST", "restores", {"json": {"recovery_point": "never made"}}, 422),
    ("POST", "recovery-points", {"json": {"name": "x" * BIG}}, 413),
    ("POST", "recovery-points", {"content": [b'{"name": "', b"x" * BIG, b'"}'],  # chunked
                                 "headers": JSON}, 413),
    ("GET", "/api/v1/databases/nosuch", {}, 404),
    ("GET", "/api/v1/databases/nosuch/timeline", {}, 404),
    ("POST", "/api/v1/databases/nosuch/restores", {"json": {"latest": True}}, 404),
    ("POST", "/api/v1/databases/nosuch/recovery-points", {"json": {}}, 404),
    ("GET", "/api/v1/databases/..%2Fmail", {}, 404),
    ("GET", "/api/v1/jobs/..%2F..%2Ftokens.json", {}, 404),
    ("GET", "/api/v1/jobs/%2E%2E/file", {}, 404),
    ("GET", "/api/v1/jobs/..%2Fjobs/file", {}, 404),
    ("DELETE", "/api/v1/jobs/..%2F..%2Faudit.log", {}, 404),
    ("PUT", "/api/v1/databases/mail", {"json": {}}, 405),
]


def test_malformed_requests_are_problems_and_the_server_protects_on(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"mail": [ALICE]}, ack_after_capture=True)  # 250: in the repository
    with running(site) as server, server.client("operator") as api:
        protecting(api, "mail")
        assert deliver(server, "smtp", ALICE, message("before the bad requests"))
        wrong = []
        for method, path, request_, status_code in MALFORMED:
            url = path if path.startswith("/") else f"/api/v1/databases/mail/{path}"
            try:
                assert_problem(api.request(method, url, **request_), status_code)
            except AssertionError as error:
                wrong.append(str(error).splitlines()[0])
        assert not wrong, "\n".join(wrong)
        described = answer(httpx.get(f"{server.api}/openapi.json"), 200)
        restores = described["paths"]["/api/v1/databases/{db_id}/restores"]["post"]["responses"]
        assert "422" not in restores and PROBLEM in restores["400"]["content"]
        assert "HTTPValidationError" not in described["components"]["schemas"]

        last = message("after the bad requests")
        assert deliver(server, "lmtp", ALICE, last)
        job = restore_job(api, "mail", tmp_path / "latest.db", latest=True)
        assert inbox_received(tmp_path / "latest.db", ALICE)[-1] == last
        assert job["links"]["file"] == f"/api/v1/jobs/{job['id']}/file"
        points = "/api/v1/databases/mail/recovery-points"
        unnamed = [answer(api.post(points, json={}), 201)["name"] for _ in range(2)]
        assert len(set(unnamed)) == 2 and all(n.startswith("manual ") for n in unnamed)
        assert_problem(api.post(points, json={"name": unnamed[0]}), 400)
        assert [j["id"] for j in answer(api.get("/api/v1/jobs"), 200)] == [job["id"]]
        assert status(api, "mail")["protection"]["restarts"] == 0
        server.stop()
    assert "Traceback" not in server.log()


# Stopping and killing


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_server_stopped_or_killed_while_mail_flows_resumes_its_chain(tmp_path: Path,
                                                                      signum: int) -> None:
    """SIGTERM stops the server cleanly (exit 0, its protector stopped with it); SIGKILL leaves
    no protector behind. Either way the restarted server resumes the same chain, and every point
    restores exactly; no acknowledged message is lost."""
    site = make_site(tmp_path, {"mail": [ALICE]})
    with running(site) as server, server.client("operator") as api:
        protector = protecting(api, "mail")["protection"]["pid"]
        with Sender(server, ALICE, "first run") as sender:
            points = []
            for n in range(2):
                sender.wait_for(5)
                points.append(point_and_copy(api, site, "mail", f"point {n}", sender))
            sender.wait_for(3)
            server.process.send_signal(signum)  # while mail comes in
            exit_status = server.wait()
    if signum == signal.SIGTERM:
        assert exit_status == 0, server.stderr()
        assert not alive(protector) and "protector of mail: stopped" in server.log()
    else:
        gone(protector)  # a protector does not outlive its server
    acknowledged = sender.acknowledged

    with running(site) as server, server.client("operator") as api:
        protecting(api, "mail")
        with Sender(server, ALICE, "second run") as sender:
            sender.wait_for(5)
            points.append(point_and_copy(api, site, "mail", "after the restart", sender))
        live = point_and_copy(api, site, "mail", "live")
        [chain] = answer(api.get("/api/v1/databases/mail/timeline"), 200)["chains"]
        assert (chain["first_txn"], chain["holes"], chain["last_txn"]) == (1, [], live.txn)
        check_points(api, site, "mail", [*points, live])
        restores_to(api, site, "mail", live, latest=True)
        server.stop()
    assert "protector of mail: resumed" in server.log()
    assert "protector of mail: new-chain" not in server.log()
    received = inbox_received(live.path, ALICE)
    assert [raw for raw in acknowledged if raw not in received] == []


def test_a_killed_protector_is_started_again_and_loses_nothing(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"mail": [ALICE]})
    with running(site) as server, server.client("operator") as api:
        first = protecting(api, "mail")["protection"]["pid"]
        with Sender(server, ALICE, "mail") as sender:
            sender.wait_for(5)
            before = point_and_copy(api, site, "mail", "before the kill", sender)
            sender.wait_for(2)
            written = status(api, "mail")["durable"]["captured_bytes"]
            os.kill(first, signal.SIGKILL)
            again = protecting(api, "mail", since=lambda s: s["protection"]["restarts"] == 1)
            sender.wait_for(5)
            after = point_and_copy(api, site, "mail", "after the kill", sender)
            # what the killed protector wrote still counts, and the new one adds to it
            assert 0 < written < status(api, "mail")["durable"]["captured_bytes"]
        protection = again["protection"]
        assert protection["pid"] != first and alive(protection["pid"])
        assert protection["last_exit"] == "killed by SIGKILL"
        assert again["error_counts"]["protector-exit"] == 1
        with server.client("auditor") as auditor:
            assert 'cps_protector_restarts_total{db="mail"} 1.0' in auditor.get("/metrics").text
        live = point_and_copy(api, site, "mail", "live")
        check_points(api, site, "mail", [before, after, live])
        restores_to(api, site, "mail", live, latest=True)
        server.stop()
    assert not alive(protection["pid"])


def test_a_killed_server_leaves_no_protector_running_during_an_outage(tmp_path: Path) -> None:
    """A protector that cannot write its repository (here a full disk) has no progress to report,
    so it would not learn from a failed write to its server that the server is gone. It learns it
    from the end of its standard input, and stops, rather than run on unsupervised beside the
    protector of the next server."""
    db = make_database(tmp_path / "mail.db", ALICE)
    with small_disk(tmp_path / "disk", "24m") as disk:
        Repository.init(disk / "repo")
        site = site_for(tmp_path, {"mail": db}, disk / "repo")
        with running(site) as server, server.client("operator") as api:
            protector = protecting(api, "mail")["protection"]["pid"]
            fill(disk)
            assert deliver(server, "lmtp", ALICE, message("while the disk is full"))
            poll(lambda: status(api, "mail")["protection"]["outage"], bool, "the outage")
            server.kill()
        gone(protector)


def test_a_cancelled_restore_job_ends_its_process_and_leaves_no_file(tmp_path: Path) -> None:
    """A restore runs in a process of its own. Here it blocks reading the repository's log
    segments (each made a FIFO) once it has started writing: cancelled, the job ends so, its
    partial file gone, and the next restore is whole."""
    site = make_site(tmp_path, {"mail": [ALICE]})
    with running(site) as server, server.client("operator") as api:
        protecting(api, "mail")
        assert deliver(server, "lmtp", ALICE, message("kept"))
        poll(lambda: list(site.repo.glob(SEGMENTS)), bool, "the delivery is captured in a segment")
        with segments_that_block(site.repo):
            job = answer(api.post("/api/v1/databases/mail/restores", json={"latest": True}), 202)
            partial = site.state_dir / "jobs" / job["id"] / "mail.db.partial"
            poll(partial.exists, bool, "the restore writes its partial file")
            [restoring] = job_processes(server.process.pid)
            answer(api.delete(job["links"]["self"]), 200)
            ended = finished(api, job)
            assert not alive(restoring) and job_processes(server.process.pid) == []
        assert ended["state"] == "cancelled", ended
        assert not any(partial.parent.glob("*")), "the cancelled restore left a file"
        assert answer(api.delete(job["links"]["self"]), 200)["state"] == "cancelled"
        audit = (site.state_dir / "audit.log").read_text().splitlines()
        assert [json.loads(line)["action"] for line in audit].count("cancel") == 1
        restore_job(api, "mail", tmp_path / "after.db", latest=True)
        assert inbox_received(tmp_path / "after.db", ALICE) == [message("kept")]
        server.stop()
    assert "Traceback" not in server.log()


def job_processes(server_pid: int) -> list[int]:
    """The processes the server started for jobs (spawned by multiprocessing)."""
    found = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with suppress(FileNotFoundError):
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
    return found


SEGMENTS = "databases/*/chains/*/segments/*.seg"


@contextmanager
def segments_that_block(repo: Path) -> Iterator[None]:
    """Every log segment of `repo` a FIFO no one writes, so that reading one blocks (a restore
    reads them after its full backup, its partial file made); afterwards the segments as they
    were (a reader still blocked sees an empty file)."""
    segments = sorted(repo.glob(SEGMENTS))
    for segment in segments:
        segment.rename(segment.with_name(segment.name + ".aside"))
        os.mkfifo(segment)
    try:
        yield
    finally:
        for segment in segments:
            with suppress(OSError):  # ENXIO: no reader to release
                os.close(os.open(segment, os.O_WRONLY | os.O_NONBLOCK))
            segment.unlink()
            segment.with_name(segment.name + ".aside").rename(segment)


# Zero loss


def test_every_acknowledged_delivery_survives_the_loss_of_the_database(tmp_path: Path) -> None:
    """With ack_after_capture, a 250 means durable in the repository: the protector and the
    server killed right after the last ones, the database and its -wal and -shm deleted, a
    restore of the repository holds every acknowledged message, byte for byte. (Without the
    wait, the last half second of mail would not be durable yet.)"""
    site = make_site(tmp_path, {"mail": [ALICE]}, ack_after_capture=True, sync_interval="500ms")
    db = site.databases["mail"]
    with running(site) as server, server.client("operator") as api, ExitStack() as stack:
        protector = protecting(api, "mail")["protection"]["pid"]
        senders = [stack.enter_context(Sender(server, ALICE, f"sender {n}")) for n in range(3)]
        for sender in senders:
            sender.wait_for(3)
        os.kill(protector, signal.SIGKILL)
        server.kill()
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)

    restore(site.repo, tmp_path / "restored.db", "--latest")
    received = inbox_received(tmp_path / "restored.db", ALICE)
    acknowledged = [raw for sender in senders for raw in sender.acknowledged]
    assert len(acknowledged) >= 9
    assert [raw for raw in acknowledged if received.count(raw) != 1] == []


def test_deliveries_waiting_to_be_durable_hold_up_no_other_delivery(tmp_path: Path) -> None:
    """With ack_after_capture and the protector stopped (SIGSTOP), more deliveries than the
    intake has worker threads all commit, unanswered; each is answered 250 once the protector
    goes on and reports them durable. A delivery waiting for that must not hold a worker."""
    site = make_site(tmp_path, {"mail": [ALICE]}, ack_after_capture=True)
    db, count = site.databases["mail"], 3 * WORKER_THREADS
    with running(site) as server, server.client("operator") as api, \
            ThreadPoolExecutor(count) as pool:
        protector = protecting(api, "mail")["protection"]["pid"]
        os.kill(protector, signal.SIGSTOP)
        try:
            sent = [message(f"held {n}") for n in range(count)]
            replies = [pool.submit(deliver, server, "lmtp", ALICE, raw) for raw in sent]
            poll(lambda: len(inbox_raws(db, ALICE)), lambda stored: stored == count,
                 f"all {count} deliveries commit while the protector is stopped")
            assert not any(reply.done() for reply in replies), "answered before durable"
        finally:
            os.kill(protector, signal.SIGCONT)
        assert [reply.result() for reply in replies] == [True] * count
        assert sorted(inbox_received(db, ALICE)) == sorted(sent)
        server.stop()


# The configuration


@pytest.mark.parametrize("wrong, said", [
    ("unknown key", "[config]: {config}, line 14: [defaults] colour: unknown key 'colour' (known: "),
    ("missing database", "[not-a-store]: no mail database at {folder}/missing.db"),
    ("missing repository", "[not-a-repo]: no CPS repository at {folder}/missing-repo"),
])
def test_a_configuration_error_is_one_line_and_starts_nothing(tmp_path: Path, wrong: str,
                                                             said: str) -> None:
    repo, db = tmp_path / "repo", make_database(tmp_path / "mail.db", ALICE)
    Repository.init(repo)
    if wrong == "unknown key":
        config = write_config(tmp_path, {"mail": db}, repo, colour="red")
    elif wrong == "missing database":
        config = write_config(tmp_path, {"mail": tmp_path / "missing.db"}, repo)
    else:
        config = write_config(tmp_path, {"mail": db}, tmp_path / "missing-repo")
    before = sorted(repo.rglob("*"))
    result = run_cps("server", "--config", config, check=False)
    assert result.returncode != 0 and result.stdout == b""
    error, *rest = result.stderr.decode().splitlines()
    assert error.startswith("cps: error " + said.format(config=config, folder=tmp_path))
    assert [line for line in rest if not line.startswith("hint: ")] == []
    assert not (tmp_path / "state").exists() and sorted(repo.rglob("*")) == before


# The log


def test_the_json_log_is_a_line_per_event_naming_the_database(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"mail": [ALICE]}, full_every="1h")
    with running(site, "--log-format", "json") as server, server.client("operator") as api:
        protecting(api, "mail")
        assert deliver(server, "smtp", ALICE, message("logged"))
        made = point(api, "mail", "logged")
        server.stop()
    events = [json.loads(line) for line in server.log().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in events)
    protector = [e for e in events if e["message"].startswith("protector of mail: ")]
    assert all(e["db"] == "mail" for e in protector), protector
    names = [e["message"].removeprefix("protector of mail: ") for e in protector]
    assert names == ["starting", "new-chain", "full-backup", "ready", "recovery-point", "stopped"]
    assert (protector[4]["name"], protector[4]["txn"]) == ("logged", made["txn"])
    assert [e["message"] for e in events if e["logger"] == "cps.server.run"] == ["ready", "stopped"]
