"""Background jobs: results kept across a restart, running ones found interrupted, old ones
forgotten with their files."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from cps.server.jobs import JobRunner, Progress


def _wait(runner: JobRunner, job_id: str) -> str:
    """The state `job_id` ends in (jobs report through their JSON file and the runner)."""
    done = threading.Event()
    runner.on_finished = lambda job: done.set() if job.id == job_id else None
    found = runner.get(job_id)
    if found is not None and not found.finished:
        assert done.wait(30), "the job did not finish"
    found = runner.get(job_id)
    assert found is not None
    return found.state


def _writes_a_file(folder: Path, progress: Progress) -> dict[str, Any]:
    progress("writing", 0, 1)
    (folder / "out.db").write_bytes(b"x" * 10)
    progress("writing", 1, 1)
    return {"file": str(folder / "out.db")}


def test_a_finished_job_and_its_file_outlive_a_restart(tmp_path: Path) -> None:
    runner = JobRunner(tmp_path)
    job = runner.submit("restore", "mail01", "alice", {"latest": True}, _writes_a_file)
    assert _wait(runner, job.id) == "done"
    runner.shutdown()

    again = JobRunner(tmp_path)
    found = again.get(job.id)
    assert found is not None and found.state == "done"
    assert found.result == {"file": str(tmp_path / "jobs" / job.id / "out.db")}
    assert (tmp_path / "jobs" / job.id / "out.db").read_bytes() == b"x" * 10
    again.shutdown()


def test_a_job_running_when_the_server_stopped_is_found_interrupted(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def blocks(_folder: Path, _progress: Progress) -> dict[str, Any]:
        started.set()
        release.wait(30)
        return {}

    runner = JobRunner(tmp_path)
    job = runner.submit("restore", "mail01", "alice", {}, blocks)
    assert started.wait(30)
    again = JobRunner(tmp_path)  # what a new server process reads while this one "died"
    found = again.get(job.id)
    assert found is not None and found.state == "interrupted"
    release.set()
    runner.shutdown()
    again.shutdown()


def test_cancel_stops_a_job_at_its_next_report_and_removes_its_files(tmp_path: Path) -> None:
    reported, go_on = threading.Event(), threading.Event()

    def long(folder: Path, progress: Progress) -> dict[str, Any]:
        (folder / "partial").write_bytes(b"half")
        progress("working", 0, 2)
        reported.set()
        go_on.wait(30)
        progress("working", 1, 2)  # cancelled: raises here
        return {"never": True}

    runner = JobRunner(tmp_path)
    job = runner.submit("export", "mail01", "alice", {}, long)
    assert reported.wait(30)
    assert runner.cancel(job.id) == (job, True)
    go_on.set()
    assert _wait(runner, job.id) == "cancelled"
    assert not (tmp_path / "jobs" / job.id).exists()
    assert runner.cancel(job.id) == (job, False), "an ended job is left as it was"
    assert runner.cancel("nosuch") == (None, False)
    runner.shutdown()


def test_expire_forgets_only_the_jobs_ended_before_the_limit(tmp_path: Path) -> None:
    runner = JobRunner(tmp_path)
    old = runner.submit("restore", "mail01", "alice", {}, _writes_a_file)
    assert _wait(runner, old.id) == "done"
    limit = time.time() + 0.001
    while time.time() <= limit:  # the next job must end strictly after the limit
        pass
    new = runner.submit("restore", "mail01", "alice", {}, _writes_a_file)
    assert _wait(runner, new.id) == "done"

    assert runner.expire(limit) == [old.id]
    assert runner.get(old.id) is None and runner.get(new.id) is not None
    assert not (tmp_path / "jobs" / old.id).exists()
    assert not (tmp_path / "jobs" / f"{old.id}.json").exists()
    assert (tmp_path / "jobs" / new.id / "out.db").exists()
    assert JobRunner(tmp_path).get(old.id) is None  # gone for good, not only from memory
    runner.shutdown()
