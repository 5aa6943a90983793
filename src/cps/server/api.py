"""The HTTP API: `/api/v1/...`, described at `/openapi.json`, and `/metrics`.

Every endpoint but `/api/v1/health` takes a bearer token (auth.py) and needs a role: `auditor` for
status, timelines and metrics, `operator` for what acts on databases or reads mail. Errors are
problem details (problems.py). What acts (recovery points, full backups, restores, recoveries,
exports, drills, copies) and every look at mail content is written to the audit log (audit.py).
Long operations are jobs (jobs.py): the request answers 202 with the job, whose progress and result are at
`/api/v1/jobs/{id}`; a restore the repository would refuse is refused at once instead. Mail at a
point in time is served by the routes of mail_api.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..capture import ask_for_full
from ..ops import check_restorable, set_keep, timelines
from ..restore import Target, parse_time
from ..verify.drill import drill_json
from . import mail_api, problems
from .auth import Principal
from .console import Console, install_console
from .job_process import restore_file, run_in_process
from .jobs import Job, Progress
from .mail_access import MailAccess
from .metrics import CONTENT_TYPE
from .service import Service
from .status import database_status, every_status, with_times

MAX_BODY = 1 << 20  # bytes a request body may have
TOO_LARGE = f"the request body is larger than {MAX_BODY} bytes"
SMALL = "Requests take small JSON documents."


class PointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, max_length=200, description="default: manual <time>")
    keep: bool = False


class KeepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    keep: bool = Field(description="keep the point whatever retention says, or let it decide")


class NoFields(BaseModel):
    """The body of a request that takes none: nothing, or an empty object."""

    model_config = ConfigDict(extra="forbid", strict=True)


class DrillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    points: int | None = Field(None, ge=0, le=1000,
                               description="transactions drawn at random; default: drill_points")
    seed: int | None = Field(None, ge=0, description="the seed of the draw; default: a new one")


class TargetModel(BaseModel):
    """Exactly one of latest, txn, at (a time as `cps restore --at` takes it) or
    recovery_point."""

    model_config = ConfigDict(extra="forbid", strict=True)

    latest: bool = False
    txn: int | None = Field(None, ge=1)
    at: str | None = Field(None, max_length=100)
    recovery_point: str | None = Field(None, max_length=200)

    def target(self) -> Target:
        given = [t for t in (
            Target("latest") if self.latest else None,
            Target("txn", self.txn) if self.txn is not None else None,
            Target("time", parse_time(self.at)) if self.at is not None else None,
            Target("point", self.recovery_point) if self.recovery_point is not None else None,
        ) if t is not None]
        if len(given) != 1:
            raise HTTPException(400, "give exactly one of latest, txn, at, recovery_point")
        return given[0]


class RestoreRequest(TargetModel):
    best_effort: bool = False


def build_app(service: Service) -> FastAPI:
    """The API of a started `service` (run.py starts and stops it around the HTTP server)."""
    app = FastAPI(title="CPS", version=__version__,
                  description="Continuous protection for mail stores: status, timelines, "
                              "recovery points, restores and mail at any point in time.")
    mail = MailAccess(service)
    console = Console(service, mail)
    problems.install(app, pages=console.error_page)
    app.add_middleware(_BodyLimit)
    _routes(app, service)
    mail_api.add_routes(app, mail, requires(service, "operator"))
    install_console(app, console)
    return app


class _BodyLimit:
    """Refuses a request body of more than MAX_BODY bytes (413): at once when its Content-Length
    says so, else as soon as more has arrived (a chunked body has no length to check first)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = Headers(scope=scope).get("content-length") if scope["type"] == "http" else None
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await problems.problem(413, "too-large", TOO_LARGE, hint=SMALL)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY:
                raise HTTPException(413, TOO_LARGE)  # to the route reading the body
            return message

        await self.app(scope, limited, send)


def requires(service: Service, role: str) -> Callable[[Request], Principal]:
    """A dependency: the request's principal, who must have `role` (401, 403 or 429 if not)."""
    def principal(request: Request) -> Principal:
        client = request.client.host if request.client else "unknown"
        wait = service.failures.blocked(client)
        if wait:
            raise HTTPException(429, f"too many failed attempts; try again in {wait:.0f} s",
                                headers={"Retry-After": str(int(wait) + 1)})
        scheme, _space, token = request.headers.get("authorization", "").partition(" ")
        found = service.tokens.principal(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            service.failures.failed(client)
            raise HTTPException(401, "a valid bearer token is needed",
                                headers={"WWW-Authenticate": "Bearer"})
        if not found.may(role):
            raise HTTPException(403, f"this needs the {role} role; the token's is {found.role}")
        return found
    return principal


def _routes(app: FastAPI, service: Service) -> None:
    # Dependencies as defaults, not in annotations: this module's annotations are strings.
    auditor = Depends(requires(service, "auditor"))
    operator = Depends(requires(service, "operator"))

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "since": service.started_at}

    @app.head("/api/v1/health")
    def health_check() -> Response:
        return Response()  # for checks that send HEAD: the answer is the status

    @app.get("/api/v1/databases")
    def databases(_who: Principal = auditor) -> list[dict[str, Any]]:
        return every_status(service)

    @app.get("/api/v1/databases/{db_id}")
    def database(db_id: str, _who: Principal = auditor) -> dict[str, Any]:
        return with_times(database_status(service, db_id))

    @app.get("/api/v1/databases/{db_id}/timeline")
    def timeline(db_id: str, _who: Principal = auditor) -> dict[str, Any]:
        service.settings(db_id)
        [found] = timelines(service.repository(db_id), db_id)
        return found.to_json()

    @app.post("/api/v1/databases/{db_id}/recovery-points", status_code=201)
    def recovery_point(db_id: str, body: PointRequest, who: Principal = operator) -> dict[str, Any]:
        return asdict(service.make_point(db_id, body.name, who, keep=body.keep))

    @app.patch("/api/v1/databases/{db_id}/recovery-points/{name}")
    def keep_point(db_id: str, name: str, body: KeepRequest, who: Principal = operator
                   ) -> dict[str, Any]:
        service.settings(db_id)
        point = set_keep(service.repository(db_id), db_id, name, body.keep)
        service.audit.record(who, "keep" if body.keep else "unkeep", db_id, name=name)
        return {"name": point.name, "txn": point.txn, "keep": point.keep}

    @app.post("/api/v1/databases/{db_id}/full-backups", status_code=202)
    def full_backup(db_id: str, _body: NoFields | None = None, who: Principal = operator
                    ) -> dict[str, Any]:
        service.settings(db_id)
        txn = ask_for_full(service.repository(db_id), db_id, timeout=60.0)
        service.audit.record(who, "full-backup", db_id, txn=txn)
        return {"started": txn is not None, "txn": txn}

    @app.post("/api/v1/databases/{db_id}/restores", status_code=202)
    def restore(db_id: str, body: RestoreRequest, who: Principal = operator) -> dict[str, Any]:
        settings = service.settings(db_id)
        target = body.target()
        repo = service.repository(db_id)
        check_restorable(repo, db_id, target, best_effort=body.best_effort)  # 4xx, not a job

        def work(folder: Path, progress: Progress) -> dict[str, Any]:
            return run_in_process(restore_file, (settings.repository, service.passphrases[db_id],
                                                 db_id, target, folder / f"{db_id}.db",
                                                 body.best_effort), progress)

        job = service.jobs.submit("restore", db_id, who.name, body.model_dump(), work)
        service.audit.record(who, "restore", db_id, target=target.describe(), job=job.id)
        return _job(job)

    def started(who: Principal, action: str, db_id: str, job_id: str) -> dict[str, Any]:
        """A job just started by `who`, in the audit log and as the answer."""
        service.audit.record(who, action, db_id, job=job_id)
        return _job(service.jobs.found(job_id))

    @app.post("/api/v1/databases/{db_id}/prunes", status_code=202)
    def start_prune(db_id: str, _body: NoFields | None = None, who: Principal = operator
                    ) -> dict[str, Any]:
        return started(who, "prune", db_id, service.start_prune(db_id, who.name))

    @app.post("/api/v1/databases/{db_id}/copies", status_code=202)
    def start_copy(db_id: str, _body: NoFields | None = None, who: Principal = operator
                   ) -> dict[str, Any]:
        return started(who, "copy", db_id, service.start_copy(db_id, who.name))

    @app.post("/api/v1/databases/{db_id}/drills", status_code=202)
    def start_drill(db_id: str, body: DrillRequest | None = None, who: Principal = operator
                    ) -> dict[str, Any]:
        request = body or DrillRequest(points=None, seed=None)
        return started(who, "drill", db_id, service.start_drill(
            db_id, who.name, random_points=request.points, seed=request.seed))

    @app.get("/api/v1/databases/{db_id}/drills")
    def drills(db_id: str, _who: Principal = auditor) -> list[dict[str, Any]]:
        service.settings(db_id)
        records, _unreadable = service.repository(db_id).drills(db_id)
        return [drill_json(record) for _key, record in reversed(records)]

    @app.get("/api/v1/jobs")
    def jobs(_who: Principal = auditor) -> list[dict[str, Any]]:
        return [_job(job) for job in service.jobs.all()]

    @app.get("/api/v1/jobs/{job_id}")
    def job(job_id: str, _who: Principal = auditor) -> dict[str, Any]:
        return _job(service.jobs.found(job_id))

    @app.delete("/api/v1/jobs/{job_id}")
    def cancel(job_id: str, who: Principal = operator) -> dict[str, Any]:
        found, asked = service.jobs.cancel(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}")
        if asked:  # a job that had ended is left as it was: nothing to write down
            service.audit.record(who, "cancel", found.db_id, job=job_id)
        return _job(found)

    @app.get("/api/v1/jobs/{job_id}/file")
    def job_file(job_id: str, who: Principal = operator) -> FileResponse:
        path = service.job_file(job_id, who)
        return FileResponse(path, filename=path.name)

    @app.get("/metrics", response_class=Response)
    def metrics(_who: Principal = auditor) -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)


def _job(job: Job) -> dict[str, Any]:
    links = {"self": f"/api/v1/jobs/{job.id}"}
    if job.state == "done" and job.made_file() is not None:
        links["file"] = f"/api/v1/jobs/{job.id}/file"
    return {**asdict(job), "links": links}


