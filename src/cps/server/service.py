"""The server's parts, together: protectors, intake, schedules, jobs, tokens and the audit log.

`Service` is what the HTTP API works with. `start()` checks every configured database and
repository, starts a protector per database (supervisor.py), the SMTP and LMTP listeners (the
store's `IntakeServer`, in this process) and the schedules of retention, restore drills and the
second copy; `stop()` stops the listeners first (deliveries under way still get their reply), then
the jobs, then what the API keeps open (`on_stop`), then the protectors (each makes what it
captured durable). With
`ack_after_capture`, a delivery into that database is answered 250 only once the protector reports
it durable in the repository.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..config import Config, DatabaseSettings
from ..durable import make_folders
from ..errors import ConfigError, CPSError, NotFound, UsageError
from ..ops import PointMade, create_point
from ..repository import Repository, copy_repository
from ..repository.prune import Retention, prune
from ..store import MailDatabase
from ..store.intake import IntakeServer, server_context
from ..verify import DrillOptions
from .audit import AuditLog
from .auth import FailureLimit, Principal, TokenStore
from .job_process import drill_database, run_in_process
from .jobs import JobRunner, Progress
from .metrics import Metrics
from .status import StatusCache
from .supervisor import ProtectorChild

logger = logging.getLogger(__name__)

ACK_PATIENCE = 300.0  # seconds a delivery waits to be durable before it is answered 451


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        state = config.server.state_dir
        self.tokens = TokenStore(state)
        self.audit = AuditLog(state)
        self.failures = FailureLimit()
        self.metrics = Metrics(self)
        self.jobs = JobRunner(state, on_finished=self.metrics.job_finished)
        self.passphrases = {d.id: _passphrase(d) for d in config.databases}
        self.children = {d.id: ProtectorChild(d, self.passphrases[d.id])
                         for d in config.databases}
        self.intake: IntakeServer | None = None
        self.started_at = time.time()
        self.next_prune: dict[str, float] = {}
        self.next_drill: dict[str, float] = {}
        self.next_copy: dict[str, float] = {}
        self.status_cache = StatusCache()
        self._repositories: dict[str, Repository] = {}
        self._schedule: asyncio.Task[None] | None = None
        self.on_stop: list[Callable[[], None]] = []  # run by stop(), after the jobs

    # The configured databases

    def settings(self, db_id: str) -> DatabaseSettings:
        found = self.config.database(db_id)
        if found is None:
            known = ", ".join(d.id for d in self.config.databases) or "none"
            raise _UnknownDatabase(f"no database {db_id!r} is configured",
                                   hint=f"Databases: {known}.")
        return found

    def repository(self, db_id: str) -> Repository:
        if db_id not in self._repositories:
            settings = self.settings(db_id)
            self._repositories[db_id] = Repository.open(settings.repository,
                                                        passphrase=self.passphrases[db_id])
        return self._repositories[db_id]

    # Life cycle

    async def start(self) -> None:
        for settings in self.config.databases:
            _check(settings)
            self.repository(settings.id)
        make_folders(self.config.server.state_dir)
        for child in self.children.values():
            child.start()
        self.intake = self._intake()
        if self.intake is not None:
            await self.intake.start()
        await self._first_due()
        self._schedule = asyncio.create_task(self._schedules())

    async def stop(self) -> None:
        if self.intake is not None:
            await self.intake.stop()
        if self._schedule is not None:
            self._schedule.cancel()
        await asyncio.to_thread(self.jobs.shutdown)
        for close in self.on_stop:
            await asyncio.to_thread(close)
        await asyncio.gather(*(asyncio.to_thread(c.stop) for c in self.children.values()))

    def _intake(self) -> IntakeServer | None:
        intake = self.config.intake
        if not self.config.databases or (intake.smtp is None and intake.lmtp is None):
            return None
        tls = None
        if intake.tls_cert is not None and intake.tls_key is not None:
            tls = server_context(intake.tls_cert, intake.tls_key)
        acknowledged = any(d.ack_after_capture for d in self.config.databases)
        return IntakeServer([d.path for d in self.config.databases], smtp=intake.smtp,
                            lmtp=intake.lmtp, max_size=intake.max_size,
                            busy_timeout=intake.busy_timeout, tls=tls, group=intake.group,
                            durable=self._wait_durable if acknowledged else None)

    async def _wait_durable(self, path: Path, committed_ms: int) -> bool:
        """For a delivery committed at `committed_ms` into the database at `path`: whether it is
        durable in the repository (at once when its database does not ask for that)."""
        settings = next(d for d in self.config.databases if d.path == path)
        if not settings.ack_after_capture:
            return True
        return await self.children[settings.id].until_durable(committed_ms, ACK_PATIENCE)

    # Retention, restore drills and the second copy

    def _scheduled(self) -> list[tuple[dict[str, float], Callable[[DatabaseSettings], float | None],
                                       Callable[[str, str], str]]]:
        """What runs on a schedule: when each database's next run is due, its interval, and
        what starts it."""
        return [(self.next_prune, lambda s: s.prune_every, self.start_prune),
                (self.next_drill, lambda s: s.drill_every, self.start_drill),
                (self.next_copy, lambda s: s.copy_every if s.copy_to else None, self.start_copy)]

    async def _first_due(self) -> None:
        """Retention and the copy are first due their interval after the start; a drill
        `drill_every` after the last one the repository records (whoever ran it), so that a server
        restarted more often than that still drills, and after the start when there is none."""
        now = time.time()
        for due_at, every, _start in self._scheduled():
            for settings in self.config.databases:
                interval = every(settings)
                if interval is not None:
                    due_at[settings.id] = now + interval
        for db_id, due in list(self.next_drill.items()):
            last = await asyncio.to_thread(self._last_drill, db_id)
            if last is not None:
                self.next_drill[db_id] = min(due, last + (self.settings(db_id).drill_every or 0))

    async def _schedules(self) -> None:
        """Each database's retention, every `prune_every`, restore drill, every `drill_every`,
        and copy to `copy_to`, every `copy_every`, as jobs; and the forgetting of jobs older than
        `keep_jobs` with their files."""
        while True:
            now = time.time()
            for due_at, every, start in self._scheduled():
                for db_id, due in list(due_at.items()):
                    if due <= now:
                        interval = every(self.settings(db_id))
                        assert interval is not None
                        due_at[db_id] = now + interval
                        start(db_id, "schedule")
            expired = self.jobs.expire(now - self.config.server.keep_jobs)
            if expired:
                logger.info("forgot %d jobs older than keep_jobs, with their files", len(expired))
            await asyncio.sleep(1.0)

    def make_point(self, db_id: str, name: str | None, who: Principal, *, keep: bool = False
                   ) -> PointMade:
        """A recovery point of `db_id` now, in the audit log and in the status at once."""
        point = create_point(self.settings(db_id).path, self.repository(db_id), db_id, name,
                             keep=keep)
        self.audit.record(who, "recovery-point", db_id, name=point.name, txn=point.txn)
        self.status_cache.forget(db_id)
        return point

    def job_file(self, job_id: str, who: Principal) -> Path:
        """The file job `job_id` made (an export's, a restored database), once its download by
        `who` is in the audit log; NotFound when the job made none, or has not finished."""
        job = self.jobs.found(job_id)
        made = job.made_file()
        if job.state != "done" or made is None or not made.is_file():
            raise NotFound(f"job {job_id} has no file to download")
        self.audit.record(who, "download", job.db_id, job=job_id, file=made.name)
        return made

    def start_prune(self, db_id: str, requested_by: str) -> str:
        settings = self.settings(db_id)
        retention = Retention(settings.keep_within, settings.keep_daily, settings.keep_weekly)
        repo = self.repository(db_id)

        def work(_folder: Path, progress: Progress) -> dict[str, object]:
            report = prune(repo, retention, db_id=db_id, progress=progress)
            return {"deleted_files": len(report.deleted_files),
                    "deleted_bytes": report.deleted_bytes, "kept_fulls": report.kept_fulls,
                    "kept_points": report.kept_points,
                    "retained_files": len(report.retained_files)}

        return self.jobs.submit("prune", db_id, requested_by, {}, work).id

    def start_copy(self, db_id: str, requested_by: str) -> str:
        """`cps repo copy` of `db_id`'s repository (its files and every pack) to `copy_to`, as a
        job; it fails, naming them, when source files are damaged or the copy differs, after
        copying every sound file."""
        settings = self.settings(db_id)
        destination = settings.copy_to
        if destination is None:
            raise UsageError(f"database {db_id} has no copy_to in the configuration",
                             hint="Set copy_to (a folder or s3://bucket/prefix) for it, and "
                                  "restart the server.")

        def work(_folder: Path, progress: Progress) -> dict[str, object]:
            report = copy_repository(settings.repository, destination, db_ids=[db_id],
                                     progress=progress)
            failure = report.failure()
            if failure is not None:
                raise failure
            return report.to_json()

        return self.jobs.submit("copy", db_id, requested_by, {"to": str(destination)}, work).id

    def start_drill(self, db_id: str, requested_by: str, *, random_points: int | None = None,
                    seed: int | None = None) -> str:
        """A restore drill of `db_id` as a job, in a process of its own; `random_points`
        defaults to the database's `drill_points`."""
        settings = self.settings(db_id)
        options = DrillOptions(settings.drill_points if random_points is None else random_points,
                               settings.drill_window, seed)

        def work(folder: Path, progress: Progress) -> dict[str, object]:
            try:
                return run_in_process(drill_database, (settings.repository,
                                                       self.passphrases[db_id], db_id, options,
                                                       folder), progress)
            finally:
                self.status_cache.forget(db_id)  # the status and metrics show the new record

        params = {"points": options.random_points, "window": options.window, "seed": seed}
        return self.jobs.submit("drill", db_id, requested_by, params, work).id

    def _last_drill(self, db_id: str) -> float | None:
        """When the last drill of `db_id` the repository records started, in seconds."""
        try:
            records, _unreadable = self.repository(db_id).drills(db_id)
        except CPSError as error:
            logger.warning("cannot read the drill records of %s: %s", db_id, error.message)
            return None
        return records[-1][1].started_at / 1000 if records else None


class _UnknownDatabase(UsageError):
    code = "missing-database"


def _passphrase(settings: DatabaseSettings) -> str | None:
    if settings.passphrase_file is None:
        return None
    try:
        lines = settings.passphrase_file.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the passphrase file of {settings.id}: "
                          f"{settings.passphrase_file}: {exc.strerror}",
                          hint="Give a readable file whose first line is the passphrase.") from None
    return lines[0] if lines else ""


def _check(settings: DatabaseSettings) -> None:
    """A configured database and repository must exist: the server creates neither."""
    MailDatabase.open(settings.path, readonly=True).close()
    Repository.read_config(settings.repository)
