"""`cps store workload` against real database files, in real processes: determinism, the log as an
oracle, corpus bodies kept byte for byte, pacing, stopping, and concurrent runs."""

from __future__ import annotations

import gc
import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from cps.store import MailDatabase
from cps.store.workload import (
    OPERATION_MIX,
    WorkloadGenerator,
    database_content,
    read_log,
    replay,
    run_workload,
)
from tests.conftest import CPS, run_cps

WALL_CLOCK_FIELDS = {"committed_at", "failed_at", "uidvalidity"}
# Dump fields that depend on when the run happened rather than what it did.
WALL_CLOCK_DUMP = re.compile(r" (created|date|uidvalidity)=\S+")


def new_database(path: Path) -> Path:
    MailDatabase.create(path).close()
    return path


def workload(db: Path, *args: str | Path) -> dict[str, Any]:
    result = run_cps("store", "workload", db, "--json", *args)
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def timeless(log: Path) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in record.items() if key not in WALL_CLOCK_FIELDS}
        for record in read_log(log)
    ]


def timeless_dump(db: Path) -> str:
    return WALL_CLOCK_DUMP.sub("", run_cps("store", "dump", db).stdout.decode())


def content_of(db: Path) -> dict[Any, Any]:
    with MailDatabase.open(db, readonly=True) as database:
        return database_content(database)


def test_the_same_seed_makes_the_same_operations_and_the_same_database(tmp_path: Path) -> None:
    first, second, other = (new_database(tmp_path / f"{n}.db") for n in ("one", "two", "other"))
    for db in (first, second):
        assert workload(db, "--ops", "300", "--seed", "42", "--log", db.with_suffix(".jsonl"))[
            "total_ops"] == 300
    workload(other, "--ops", "300", "--seed", "43", "--log", other.with_suffix(".jsonl"))

    assert timeless(first.with_suffix(".jsonl")) == timeless(second.with_suffix(".jsonl"))
    assert len(timeless(first.with_suffix(".jsonl"))) == 305  # 5 mailboxes, then 300 operations
    assert timeless_dump(first) == timeless_dump(second)
    assert content_of(first) == content_of(second)
    assert timeless(first.with_suffix(".jsonl")) != timeless(other.with_suffix(".jsonl"))


def test_replaying_the_log_gives_the_database_content(tmp_path: Path) -> None:
    db = new_database(tmp_path / "mail.db")
    log = tmp_path / "ops.jsonl"
    summary = workload(db, "--ops", "2500", "--seed", "7", "--log", log, "--mailboxes", "3")

    records = list(read_log(log))
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert {r["op"] for r in records} == {*OPERATION_MIX, "mailbox_create"}
    assert not [r for r in records if "error" in r] and summary["errors"] == 0
    commits = [r["committed_at"] for r in records]
    assert commits == sorted(commits)
    model = replay(records)
    assert model.content() == content_of(db)
    assert len(model.messages) > 500
    counted = {kind: sum(r["op"] == kind for r in records) for kind in OPERATION_MIX}
    assert counted == summary["ops"]


def test_a_second_run_continues_from_the_database_state(tmp_path: Path) -> None:
    db = new_database(tmp_path / "mail.db")
    workload(db, "--ops", "200", "--seed", "1", "--log", tmp_path / "first.jsonl")
    second = workload(db, "--ops", "200", "--seed", "2", "--log", tmp_path / "second.jsonl")
    assert second["mailboxes_created"] == 0
    records = [*read_log(tmp_path / "first.jsonl"), *read_log(tmp_path / "second.jsonl")]
    assert replay(records).content() == content_of(db)


def test_corpus_messages_are_delivered_byte_for_byte(tmp_path: Path, corpus: Path) -> None:
    source = corpus / "enron" / "allen-p"
    db = new_database(tmp_path / "mail.db")
    log = tmp_path / "ops.jsonl"
    workload(db, "--ops", "300", "--corpus", source, "--log", log, "--seed", "3")

    records = list(read_log(log))
    deliveries = [r for r in records if r["op"] == "deliver"]
    assert len(deliveries) > 100
    for record in deliveries:
        raw = (source / record["source"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == record["sha256"]
        assert len(raw) == record["size"]
    model = replay(records)
    with MailDatabase.open(db, readonly=True) as database:
        for message_id, message in model.messages.items():
            stored = database.fetch_raw(message_id)
            assert hashlib.sha256(stored).hexdigest() == message.sha256
    assert model.content() == content_of(db)
    assert len({r["source"] for r in deliveries}) == len(deliveries)  # one pass: no repeats yet


def test_rate_paces_the_operations(tmp_path: Path) -> None:
    db = new_database(tmp_path / "mail.db")
    log = tmp_path / "ops.jsonl"
    summary = workload(db, "--rate", "50", "--duration", "1", "--log", log)
    assert 20 <= summary["total_ops"] <= 80
    assert summary["stopped"] == "duration"
    operations = [r for r in read_log(log) if r["op"] != "mailbox_create"]
    assert len(operations) == summary["total_ops"]


def test_a_duration_run_performs_the_same_sequence(tmp_path: Path) -> None:
    timed, counted = new_database(tmp_path / "timed.db"), new_database(tmp_path / "counted.db")
    summary = run_workload(timed, duration=0.3, seed=9, log=tmp_path / "timed.jsonl")
    assert summary.stopped == "duration" and summary.total_ops > 0
    run_workload(counted, ops=summary.total_ops, seed=9, log=tmp_path / "counted.jsonl")
    assert timeless(tmp_path / "timed.jsonl") == timeless(tmp_path / "counted.jsonl")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_with_a_complete_log(tmp_path: Path, signum: int) -> None:
    db = new_database(tmp_path / "mail.db")
    log = tmp_path / "ops.jsonl"
    process = subprocess.Popen(
        [*CPS, "store", "workload", str(db), "--rate", "200", "--log", str(log), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text(encoding="utf-8").count("\n") >= 30):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["stopped"] == "interrupted"
    assert replay(read_log(log)).content() == content_of(db)


def test_two_workloads_on_one_database_both_finish(tmp_path: Path) -> None:
    db = new_database(tmp_path / "mail.db")
    processes = [
        subprocess.Popen(
            [*CPS, "store", "workload", str(db), "--ops", "400", "--seed", str(seed),
             "--log", str(tmp_path / f"{seed}.jsonl"), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for seed in (1, 2)
    ]
    results = [process.communicate(timeout=300) for process in processes]
    for process, (stdout, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr.decode()
        summary = json.loads(stdout)
        assert summary["total_ops"] == 400
        assert summary["errors"] <= 20  # only races with the other writer may fail
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    creations = [r for seed in (1, 2) for r in read_log(tmp_path / f"{seed}.jsonl")
                 if r["op"] == "mailbox_create"]
    assert sorted(r["mailbox"] for r in creations) == [f"user00{n}@example.com" for n in range(1, 6)]


def test_bad_requests_fail_clearly_and_change_nothing(tmp_path: Path) -> None:
    db = new_database(tmp_path / "mail.db")
    log = tmp_path / "ops.jsonl"
    log.write_text("keep me\n")
    taken = run_cps("store", "workload", db, "--ops", "5", "--log", log, check=False)
    assert taken.returncode == 2 and b"already exists" in taken.stderr
    assert log.read_text() == "keep me\n"
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("hello")
    refused = run_cps("store", "workload", not_a_store, "--ops", "5", check=False)
    assert refused.returncode == 3 and b"not-a-store" in refused.stderr
    no_rate = run_cps("store", "workload", db, "--rate", "0", check=False)
    assert no_rate.returncode == 2
    assert content_of(db) == {}


def test_the_summary_is_printed_for_people_too(tmp_path: Path) -> None:
    db = new_database(tmp_path / "mail.db")
    text = run_cps("store", "workload", db, "--ops", "50").stdout.decode()
    assert text.startswith("50 operations in ") and "stopped by ops" in text
    assert "mailboxes created: 5" in text and "errors: 0" in text


def test_docs_describe_every_field_the_log_holds(tmp_path: Path) -> None:
    db = new_database(tmp_path / "mail.db")
    log = tmp_path / "ops.jsonl"
    run_workload(db, ops=1500, seed=7, log=log, mailboxes=2)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "workload.md").read_text()
    fields = {key for record in read_log(log) for key in record}
    fields |= {key for r in read_log(log) if r["op"] == "deliver" for key in r["deliveries"][0]}
    ops = {r["op"] for r in read_log(log)}
    assert not {name for name in fields | ops if f"`{name}`" not in docs}


def traced_memory() -> int:
    """Python memory in use, without garbage awaiting collection or the bounded `re` cache
    (the email parser compiles a pattern per MIME boundary)."""
    gc.collect()
    re.purge()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.slow
def test_a_long_run_keeps_memory_flat(tmp_path: Path) -> None:
    with MailDatabase.create(tmp_path / "mail.db") as db:
        generator = WorkloadGenerator(db, seed=5)
        generator.run(ops=3000)
        tracemalloc.start()
        generator.run(ops=2000)
        before = traced_memory()
        summary = generator.run(ops=30000)
        after = traced_memory()
        tracemalloc.stop()
    assert summary.messages_delivered > 10000
    assert after - before < 200_000
