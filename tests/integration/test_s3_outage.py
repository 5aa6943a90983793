"""Capture never waits on the network: a repository in a bucket is written through the protector's
upload spool, so a bucket that goes away (its server killed, started again later), refuses every
request (503) or answers slowly costs upload lag, shown in the status and the timeline, never the
application's pace or a transaction. When the spool is full, capture rides it out as any outage
(capture/outage.py). Every test ends judged against reference copies restored from the bucket
alone: with a state folder of their own, restores see no spool, as on another host.

The S3 server is a real SeaweedFS of the module's own (the session's is shared by other tests and
must not be killed); 503s and slow answers come from a real HTTP proxy in front of it
(tests/s3_proxy.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cps.config import S3Location
from cps.errors import StorageUnavailable
from cps.repository import ProtectorStatus, Repository
from cps.repository.storage import coordination_folder, open_storage
from cps.repository.storage.s3 import S3Storage
from cps.repository.storage.spool import Spool, Spooled
from tests import s3_server as s3
from tests.conftest import bucket_repository
from tests.integration.protect_helpers import (
    QUICK,
    Oracle,
    Reference,
    application,
    check_released_then_new_chain,
    new_store,
    protecting,
    stop_in_a_new_chain,
    timeline,
    wait_until,
)
from tests.s3_proxy import s3_proxy
from tests.s3_server import S3Server

SEED = 20261207


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3.running(tmp_path_factory.mktemp("seaweedfs-outages")) as server:
        yield server


@pytest.fixture
def server(own_server: S3Server) -> S3Server:
    """The module's server, running (a test that failed during an outage left it killed)."""
    if own_server.process.poll() is not None:
        s3.restart(own_server)
    return own_server


def spooled(location: S3Location) -> list[Spooled]:
    return Spool(coordination_folder(location) / "spool").files()


def host_status(location: S3Location) -> ProtectorStatus | None:
    """The protector's latest status as its host sees it: the spool's, with no request to the
    bucket, while the bucket is down and a status waits in the spool; else the bucket's (None
    while that cannot be read)."""
    try:
        return Repository(location, open_storage(location), {}, None).status("mail")
    except StorageUnavailable:
        return None


def outage_shown(location: S3Location, before: Reference) -> bool:
    """The host's status shows transactions after `before` captured locally, not in the bucket,
    waiting, and why."""
    status = host_status(location)
    return (status is not None and status.durable_txn is not None and before.txn is not None
            and status.durable_txn > before.txn and status.uploaded_txn is not None
            and status.uploaded_txn <= before.txn and status.upload_waiting_files > 0
            and status.upload_error is not None and status.upload_lag is not None)


def caught_up(location: S3Location, txn: int | None = None) -> bool:
    """The bucket has everything captured (through `txn` at least), after an outage."""
    status = host_status(location)
    return (status is not None and status.uploaded_txn == status.durable_txn
            and (txn is None or (status.durable_txn or 0) >= txn)
            and status.upload_error is None and status.upload_recovered_at is not None)


def check_from_the_bucket_alone(oracle: Oracle, monkeypatch: pytest.MonkeyPatch,
                                tmp_path: Path) -> None:
    """Nothing is left in the spool, and every point and the latest state restore exactly from
    the bucket, read as another host reads it."""
    location = oracle.repo
    assert isinstance(location, S3Location)
    assert spooled(location) == []
    monkeypatch.setenv("CPS_STATE_DIR", str(tmp_path / "another-host"))
    oracle.check_points(by_txn=True)
    oracle.check_latest()


def bucket_store(server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 endpoint_url: str | None = None) -> tuple[S3Location, Path, Oracle]:
    """A fresh repository in `server`'s bucket, an empty mail store, and their oracle."""
    location = bucket_repository(server, tmp_path, monkeypatch, endpoint_url)
    db = tmp_path / "mail.db"
    new_store(db, location)
    return location, db, Oracle(db, location, tmp_path)


def test_a_killed_bucket_costs_upload_lag_and_nothing_else(
        server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    location, db, oracle = bucket_store(server, tmp_path, monkeypatch)
    with application(db, seed=SEED) as app, protecting(db, location, *QUICK) as protector:
        app.run(ops=20)
        before = oracle.point("before the outage")
        s3.kill(server)
        app.run(ops=60)  # committed while the bucket is gone
        protector.wait_for("upload-failed")
        wait_until(lambda: outage_shown(location, before),
                   "the status shows what is captured locally and what waits for the bucket")
        s3.restart(server)
        protector.wait_for("upload-recovered")
        wait_until(lambda: caught_up(location), "the bucket has caught up")
        after = oracle.point("after the outage")
        protector.stop()
        app.close()
    assert not protector.named("sync-failed"), "capture waited for the network"
    view = timeline(location)
    [chain] = view["chains"]
    assert not chain["holes"] and chain["last_txn"] >= after.txn
    upload = view["upload"]
    assert upload["off_host_txn"] == upload["captured_locally_txn"] == after.txn
    assert upload["last_outage"]["until"] is not None and upload["error"] is None
    assert "then caught up" in view["protector"]["description"]
    check_from_the_bucket_alone(oracle, monkeypatch, tmp_path)


@pytest.mark.slow
def test_a_protector_started_again_uploads_what_the_spool_kept(
        server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    location, db, oracle = bucket_store(server, tmp_path, monkeypatch)
    with application(db, seed=SEED) as app:
        with protecting(db, location, *QUICK) as protector:
            app.run(ops=20)
            before = oracle.point("before the outage")
            s3.kill(server)
            app.run(ops=40)
            wait_until(lambda: outage_shown(location, before), "segments wait in the spool")
            protector.kill()  # SIGKILL, with the bucket still gone
        left = spooled(location)
        assert any(s.key.endswith(".seg") for s in left)
        s3.restart(server)
        with protecting(db, location, *QUICK) as protector:
            assert protector.named("resumed"), "the chain goes on from what the spool kept"
            app.run(ops=10)
            after = oracle.point("after the restart")
            protector.stop()
        app.close()
    stored = {entry.name for entry in S3Storage(location).list("", recursive=True)}
    assert {s.key for s in left} <= stored
    [chain] = timeline(location)["chains"]
    assert not chain["holes"] and chain["last_txn"] >= after.txn
    check_from_the_bucket_alone(oracle, monkeypatch, tmp_path)


def test_a_full_spool_is_an_outage_the_wal_limit_bounds(
        server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    location, db, oracle = bucket_store(server, tmp_path, monkeypatch)
    with application(db, seed=SEED) as app, \
            protecting(db, location, *QUICK, "--spool-limit", "1MiB", "--wal-limit", "1MiB") \
            as protector:
        app.run(ops=20)
        before = oracle.point("before the outage")
        s3.kill(server)

        def released() -> bool:
            app.run(ops=10)
            return bool(protector.named("wal-released"))

        wait_until(released, "the spool filled, then the WAL passed its limit and was let go")
        [failed] = protector.named("sync-failed")
        assert "upload spool" in str(failed["error"]) and "is full" in str(failed["error"])
        assert sum(s.size for s in spooled(location)) <= 1 << 20
        assert protector.process.poll() is None
        s3.restart(server)
        after = stop_in_a_new_chain(protector, app, oracle)
    check_released_then_new_chain(location, before, after)
    check_from_the_bucket_alone(oracle, monkeypatch, tmp_path)


def test_a_bucket_that_refuses_or_answers_slowly_costs_upload_lag_only(
        s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with s3_proxy(s3_server.endpoint_url) as (url, faults):
        location, db, oracle = bucket_store(s3_server, tmp_path, monkeypatch, url)
        with application(db, seed=SEED) as app, protecting(db, location, *QUICK) as protector:
            app.run(ops=20)
            before = oracle.point("before the refusals")
            faults.unavailable = True
            app.run(ops=40)
            failed = protector.wait_for("upload-failed")
            assert "ServiceUnavailable" in str(failed["error"])
            wait_until(lambda: outage_shown(location, before), "the refusals show in the status")
            faults.unavailable = False
            protector.wait_for("upload-recovered")
            faults.delay = 0.2
            app.run(ops=40)  # while every answer comes late
            middle = oracle.point("while the bucket is slow")
            wait_until(lambda: caught_up(location, middle.txn), "a slow bucket catches up")
            faults.delay = 0.0
            protector.stop()
            app.close()
        assert faults.refused > 0
        assert not protector.named("sync-failed"), "capture waited for the network"
        check_from_the_bucket_alone(oracle, monkeypatch, tmp_path)
