"""Background jobs: restores, recoveries, exports, prunes and drills the API starts and then reports on.

A job runs on one of JOB_THREADS threads, reports its progress (a stage, done, total), can be
cancelled (it stops at its next progress report, leaving nothing half-written: a restore removes
its partial file), and keeps its result. A finished job is written to `<state_dir>/jobs/<id>.json`
(atomically), its files, when it makes any, go to `<state_dir>/jobs/<id>/`, and both outlive a
restart of the server; a job the server was running when it stopped is found again as
`interrupted`.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..durable import atomic_write, make_folders
from ..errors import CPSError, NotFound

logger = logging.getLogger(__name__)

JOB_THREADS = 2
Progress = Callable[[str, int, int], None]
Work = Callable[[Path, Progress], dict[str, Any]]  # (its folder, its progress) -> its result


class Cancelled(Exception):
    """Raised in a job's thread at its next progress report once the job is cancelled."""


@dataclass
class Job:
    id: str
    kind: str  # "restore", "recover", "export", "prune", "drill"
    db_id: str | None
    requested_by: str
    params: dict[str, Any]
    state: str = "queued"  # queued, running, done, failed, cancelled, interrupted
    progress: dict[str, Any] = field(default_factory=dict)  # stage, done, total
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # code, message, hint
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled", "interrupted")

    def made_file(self) -> Path | None:
        """The file the job made for downloading: an export's, or a restored database."""
        made = (self.result or {}).get("file") or (self.result or {}).get("output")
        return Path(str(made)) if made else None


class JobRunner:
    def __init__(self, state_dir: Path, on_finished: Callable[[Job], None] | None = None) -> None:
        self.folder = state_dir / "jobs"
        self.on_finished = on_finished or (lambda _job: None)
        self._jobs: dict[str, Job] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(JOB_THREADS, thread_name_prefix="cps-job")
        self._load()

    def submit(self, kind: str, db_id: str | None, requested_by: str, params: dict[str, Any],
               work: Work) -> Job:
        job = Job(uuid.uuid4().hex[:16], kind, db_id, requested_by, params)
        with self._lock:
            self._jobs[job.id] = job
            self._cancel[job.id] = threading.Event()
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def found(self, job_id: str) -> Job:
        """Job `job_id`; NotFound when there is none (any more)."""
        job = self.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}", hint="A job is kept for keep_jobs (server "
                           "configuration) after it ends, then forgotten with its files.")
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at)

    def cancel(self, job_id: str) -> tuple[Job | None, bool]:
        """The job, and whether it was asked to stop (one that had ended is left as it was)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.finished:
                return job, False
            self._cancel[job_id].set()
            if job.state == "queued":
                job.state, job.ended_at = "cancelled", time.time()
        return job, True

    def expire(self, ended_before: float) -> list[str]:
        """Forget the jobs that ended before `ended_before` and delete their files; their ids."""
        with self._lock:
            old = [j for j in self._jobs.values()
                   if j.finished and (j.ended_at or j.created_at) < ended_before]
            for job in old:
                del self._jobs[job.id]
                self._cancel.pop(job.id, None)
        for job in old:
            shutil.rmtree(self.files(job), ignore_errors=True)
            (self.folder / f"{job.id}.json").unlink(missing_ok=True)
        return [job.id for job in old]

    def files(self, job: Job) -> Path:
        return self.folder / job.id

    def shutdown(self) -> None:
        """Cancel what runs and wait for it to stop."""
        with self._lock:
            for event in self._cancel.values():
                event.set()
        self._pool.shutdown(wait=True)

    def _run(self, job: Job, work: Work) -> None:
        cancel = self._cancel[job.id]
        if cancel.is_set():
            self._finish(job)
            return

        def progress(stage: str, done: int, total: int) -> None:
            if cancel.is_set():
                raise Cancelled
            job.progress = {"stage": stage, "done": done, "total": total}

        job.state, job.started_at = "running", time.time()
        self._write(job)  # found as interrupted if the server stops before it ends
        folder = self.files(job)
        try:
            make_folders(folder)
            job.result = work(folder, progress)
            job.state = "done"
        except Cancelled:
            job.state = "cancelled"
        except CPSError as error:
            job.state = "failed"
            job.error = {"code": error.code, "message": error.message, "hint": error.hint}
        except Exception as error:  # a bug: the job fails, the server goes on, the log says why
            logger.exception("job %s (%s) failed", job.id, job.kind)
            job.state = "failed"
            job.error = {"code": "error", "message": f"the job failed: {error}", "hint": None}
        if job.state != "done":
            shutil.rmtree(folder, ignore_errors=True)
        self._finish(job)

    def _finish(self, job: Job) -> None:
        job.ended_at = time.time()
        self._write(job)
        self.on_finished(job)

    def _write(self, job: Job) -> None:
        make_folders(self.folder)
        atomic_write(self.folder / f"{job.id}.json", json.dumps(asdict(job)).encode())

    def _load(self) -> None:
        """Jobs of earlier runs: finished ones as they ended, unfinished ones interrupted."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("*.json"):
            try:
                job = Job(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue
            if not job.finished:
                job.state = "interrupted"
            self._jobs[job.id] = job
