"""Mail at a point in time over HTTP, under /api/v1/databases/{db_id}/mail: what `cps browse`,
`show`, `search`, `diff` and `recover` do, through the same library calls (`cps.granular`).

- Every endpoint needs the operator role: an auditor sees status and timelines, never mail.
- The point is the `point` parameter (`latest`, `txn:N`, `point:NAME`, `at:TIME` or a time), read
  by `cps.granular.parse_point`. Every answer says which transaction it shows; page with
  `point=txn:N`, since `latest` and relative times move on.
- A folder path is a list of names, each checked as the store checks names: the `folder` query
  parameter once per name from the top, a JSON list in bodies. A mailbox is a path segment; a
  message is the last part of the path: a UID in `folder`, or a Message-ID (slashes and all).
- Points stay open between requests (open_points.py).
- Each look at mail, and each recovery and export, is written to the audit log before the answer
  with who, the database and the point.
- Recoveries and exports are jobs, checked before they are accepted (a wrong mailbox, folder or
  message is a 4xx answer, not a failed job) and run at the transaction the request saw. An export
  is one mbox file, or a zip of the exported tree, downloaded from /api/v1/jobs/{id}/file.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Response
from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field

from ..durable import fsync_folder
from ..errors import UsageError
from ..granular import (
    MessageView,
    RecoverRequest,
    Snapshot,
    diff_databases,
    folder_tree,
    mailboxes,
    open_snapshot,
    parse_point,
    point_label,
    recover_into,
    search,
    select_recovery,
    show_message,
)
from ..granular.browse import MOST_SKIPPED, folder_page, folder_row
from ..granular.select import select_folders
from ..repository import Repository
from ..restore import Target, format_ms, parse_time
from ..store import MailDatabase, SearchQuery
from ..store.names import check_address, check_folder_name
from ..store.transfer import Format, export_mail
from .auth import Principal
from .jobs import Job, Progress, Work
from .open_points import OpenPoints
from .service import Service

MAIL = "/api/v1/databases/{db_id}/mail"
MAILBOX = MAIL + "/mailboxes/{address}"
MOST_LISTED = 1000  # messages or hits in one answer

POINT = Query(max_length=300, description="latest, txn:N, point:NAME, at:TIME or a time")
FOLDER = Query([], description="The folder's path: one parameter per name, from the top.")
FILTERS = Query()  # the search filters, each a query parameter
Selector = Annotated[str, Field(max_length=1000)]


class _MailBody(BaseModel):
    # A misspelt key must not widen what is recovered or exported to the whole mailbox.
    model_config = ConfigDict(extra="forbid")

    point: str = Field(max_length=300, description="latest, txn:N, point:NAME, at:TIME")
    mailbox: str = Field(max_length=320)
    folder: list[str] = Field(default_factory=list,
                              description="The folder's path, one item per name; none: "
                                          "the whole mailbox.")


class RecoverBody(_MailBody):
    messages: list[Selector] = Field(default_factory=list, max_length=10_000,
                                     description="Only these: UIDs in folder, or Message-IDs.")
    target_mailbox: str | None = Field(None, max_length=320,
                                       description="The live mailbox to add to (default: mailbox).")
    merge: bool = Field(False, description="Into the original folders, not 'Recovered Items'.")
    batch: int = Field(500, ge=1, le=10_000, description="Messages added per transaction.")

    def request(self) -> RecoverRequest:
        target = check_address(self.target_mailbox) if self.target_mailbox else None
        return RecoverRequest(check_address(self.mailbox), _folder_path(self.folder),
                              tuple(self.messages), target, self.merge, self.batch)


class ExportBody(_MailBody):
    format: Literal["mbox", "eml", "maildir"] = "mbox"


class SearchFilters(BaseModel):
    """What `cps search` takes; every filter given must match."""

    model_config = ConfigDict(extra="forbid")

    point: str = Field(max_length=300)
    text: str | None = Field(None, max_length=1000)
    sender: str | None = Field(None, alias="from", max_length=1000)
    recipient: str | None = Field(None, alias="to", max_length=1000)
    subject: str | None = Field(None, max_length=1000)
    since: str | None = Field(None, max_length=100, description="Received at or after.")
    before: str | None = Field(None, max_length=100, description="Received before.")
    has_attachment: bool | None = None
    mailbox: str | None = Field(None, max_length=320)
    folder: list[str] = Field(default_factory=list, description="With mailbox: this folder "
                              "and its subfolders, one parameter per name.")
    limit: int = Field(100, ge=1, le=MOST_LISTED)

    def query(self) -> SearchQuery:
        return SearchQuery(text=self.text, from_=self.sender, to=self.recipient,
                           subject=self.subject, since=_seconds(self.since),
                           before=_seconds(self.before), has_attachment=self.has_attachment,
                           limit=self.limit)


@dataclass(frozen=True, slots=True)
class _Seen:
    """A point as one request sees it: the database then (valid inside the block that gave it),
    and how answers and the audit name it."""

    database: MailDatabase
    db_id: str
    txn: int
    label: str
    point: dict[str, Any]

    @classmethod
    def of(cls, snapshot: Snapshot, target: Target) -> _Seen:
        label = point_label(target, snapshot.txn)
        when = format_ms(snapshot.txn_time) if snapshot.txn_time is not None else None
        return cls(snapshot.database, snapshot.db_id, snapshot.txn, label,
                   snapshot.describe() | {"txn_time": when, "label": label})


class _Mail:
    """What the routes share: the databases at their points, and the audit log."""

    def __init__(self, service: Service, points: OpenPoints) -> None:
        self.service = service
        self.points = points

    @contextmanager
    def at(self, db_id: str, *specs: str) -> Iterator[list[_Seen]]:
        """Database `db_id` at each point `specs` names, in that order."""
        self.service.settings(db_id)  # an unknown database is named as such
        targets = [parse_point(spec) for spec in specs]
        with self.points.use(self.service.repository(db_id), db_id, *targets) as snapshots:
            yield [_Seen.of(s, t) for s, t in zip(snapshots, targets, strict=True)]

    def audit(self, who: Principal, action: str, seen: _Seen, **details: Any) -> None:
        self.service.audit.record(who, action, seen.db_id, point=seen.label, txn=seen.txn,
                                  **details)


def add_routes(app: FastAPI, service: Service, operator_role: Callable[..., Principal]) -> None:
    """Serve mail at a point in time on `app` to whom `operator_role` (a dependency) admits."""
    points = OpenPoints()
    service.on_stop.append(points.close)
    mail = _Mail(service, points)
    operator = Depends(operator_role)  # as a default: this module's annotations are strings
    _browse_routes(app, mail, operator)
    _search_routes(app, mail, operator)
    _job_routes(app, mail, operator)


def _browse_routes(app: FastAPI, mail: _Mail, operator: Any) -> None:
    @app.get(MAIL + "/mailboxes")
    def list_mailboxes(db_id: str, point: str = POINT, who: Principal = operator
                       ) -> dict[str, Any]:
        with mail.at(db_id, point) as [seen]:
            listed = [m.as_dict() for m in mailboxes(seen.database)]
        mail.audit(who, "browse", seen)
        return {"point": seen.point, "mailboxes": listed}

    @app.get(MAILBOX + "/folders")
    def list_folders(db_id: str, address: str, point: str = POINT, who: Principal = operator
                     ) -> dict[str, Any]:
        address = check_address(address)
        with mail.at(db_id, point) as [seen]:
            tree = [folder_row(f) for f in folder_tree(seen.database, address)]
        mail.audit(who, "browse", seen, mailbox=address)
        return {"point": seen.point, "mailbox": address, "folders": tree}

    @app.get(MAILBOX + "/messages")
    def list_messages(db_id: str, address: str, point: str = POINT, folder: list[str] = FOLDER,
                      limit: int = Query(100, ge=1, le=MOST_LISTED),
                      offset: int = Query(0, ge=0, le=MOST_SKIPPED),
                      who: Principal = operator) -> dict[str, Any]:
        address, path = check_address(address), _folder_path(folder)
        if not path:
            raise UsageError("name the folder to list", hint="Give its path as folder=NAME, one "
                             "parameter a name; the folder tree is at .../folders.")
        with mail.at(db_id, point) as [seen]:
            page = folder_page(seen.database, address, path, limit=limit, offset=offset)
        mail.audit(who, "browse", seen, mailbox=address, folder=list(path), offset=offset,
                   limit=limit)
        return {"point": seen.point, **page}

    @app.get(MAILBOX + "/messages/{selector:path}", response_model=None)
    def show(db_id: str, address: str, selector: str = PathParameter(max_length=1000),
             point: str = POINT, folder: list[str] = FOLDER, raw: bool = False,
             who: Principal = operator) -> dict[str, Any] | Response:
        address, path = check_address(address), _folder_path(folder)
        with mail.at(db_id, point) as [seen]:
            view = show_message(seen.database, address, path, selector)
        mail.audit(who, "show", seen, mailbox=address, folder=list(view.folder),
                   uid=view.message.uid, message_id=view.message.message_id, raw=raw)
        return _raw(view) if raw else {"point": seen.point, "message": view.as_dict()}


def _search_routes(app: FastAPI, mail: _Mail, operator: Any) -> None:
    @app.get(MAIL + "/search")
    def search_mail(db_id: str, filters: SearchFilters = FILTERS, who: Principal = operator
                    ) -> dict[str, Any]:
        address = check_address(filters.mailbox) if filters.mailbox is not None else None
        path = _folder_path(filters.folder)
        if path and address is None:
            raise UsageError("folder needs mailbox", hint="Name the mailbox the folder is in.")
        query = filters.query()
        with mail.at(db_id, filters.point) as [seen]:
            hits = search(seen.database, query, mailbox=address, folder=path)
        mail.audit(who, "search", seen, hits=len(hits),
                   **filters.model_dump(exclude={"point"}, by_alias=True, exclude_none=True))
        return {"point": seen.point, "hits": [hit.as_dict() for hit in hits]}

    @app.get(MAIL + "/diff")
    def diff(db_id: str, earlier: str = Query(alias="from", max_length=300),
             later: str | None = Query(None, alias="to", max_length=300), live: bool = False,
             mailbox: str | None = None, who: Principal = operator) -> dict[str, Any]:
        if (later is None) != live:
            raise UsageError("give exactly one of to=POINT and live=true",
                             hint="to compares two points; live=true compares with the database "
                                  "as it is now.")
        address = check_address(mailbox) if mailbox else None
        live_path = mail.service.settings(db_id).path
        with mail.at(db_id, earlier, *([] if later is None else [later])) as seen, \
                ExitStack() as stack:
            now = (stack.enter_context(MailDatabase.open(live_path, readonly=True)) if live
                   else seen[1].database)
            changes = diff_databases(seen[0].database, now, mailbox=address)
        to = {"live": str(live_path)} if live else seen[1].point
        mail.audit(who, "diff", seen[0], to="live" if live else seen[1].label, mailbox=address)
        return {"from": seen[0].point, "to": to, "mailbox": address} | changes.as_dict()


def _job_routes(app: FastAPI, mail: _Mail, operator: Any) -> None:
    service = mail.service

    @app.post(MAIL + "/recoveries", status_code=202)
    def recover(db_id: str, body: RecoverBody, who: Principal = operator) -> dict[str, Any]:
        live_path = service.settings(db_id).path
        request = body.request()
        with mail.at(db_id, body.point) as [seen], \
                MailDatabase.open(live_path, readonly=True) as live:
            select_recovery(seen.database, live, request)  # refused now, not in the job
        work = _recovery(service.repository(db_id), seen, request, live_path)
        job = service.jobs.submit("recover", db_id, who.name, _params(body, seen), work)
        mail.audit(who, "recover", seen, job=job.id, **body.model_dump(exclude={"point"}))
        return _accepted(job)

    @app.post(MAIL + "/exports", status_code=202)
    def export(db_id: str, body: ExportBody, who: Principal = operator) -> dict[str, Any]:
        address, path = check_address(body.mailbox), _folder_path(body.folder)
        with mail.at(db_id, body.point) as [seen]:
            select_folders(seen.database, address, path)  # refused now, not in the job
        work = _export(service.repository(db_id), seen, address, path, Format(body.format))
        job = service.jobs.submit("export", db_id, who.name, _params(body, seen), work)
        mail.audit(who, "export", seen, job=job.id, **body.model_dump(exclude={"point"}))
        return _accepted(job, file=f"/api/v1/jobs/{job.id}/file")


def _recovery(repo: Repository, seen: _Seen, request: RecoverRequest, live_path: Path) -> Work:
    """The job that recovers `request` into the live database, from the transaction `seen` is."""
    def work(_files: Path, progress: Progress) -> dict[str, Any]:
        with open_snapshot(repo, seen.db_id, Target("txn", seen.txn)) as snapshot, \
                MailDatabase.open(live_path) as live:
            report = recover_into(snapshot.database, seen.label, live, request, progress)
        return {"point": seen.point, "recover": report.as_dict()}
    return work


def _export(repo: Repository, seen: _Seen, address: str, path: tuple[str, ...], kind: Format
            ) -> Work:
    """The job that exports a folder with its subfolders, or a mailbox, at the transaction `seen`
    is, into one file of its folder."""
    def work(files: Path, progress: Progress) -> dict[str, Any]:
        tree = files / "export"
        with open_snapshot(repo, seen.db_id, Target("txn", seen.txn)) as snapshot:
            report = export_mail(snapshot.database, address, path, tree, kind, progress)
        packed = _pack(tree, f"{seen.db_id}-txn{seen.txn}", progress)
        facts = {k: v for k, v in report.as_dict().items() if k != "destination"}  # removed
        return {"point": seen.point, "export": facts, "file": str(packed),
                "bytes": packed.stat().st_size}
    return work


def _pack(tree: Path, stem: str, progress: Progress) -> Path:
    """The export as one file beside `tree`: a lone mbox file as it is, under the name the
    exporter gave it (as a local export names it), anything else a zip of the tree, its folders
    too (a Maildir needs its empty cur, new and tmp), named `stem`.zip; `tree` is removed. Every
    name comes from the exporter, which keeps folder names from leaving the tree."""
    paths = sorted(tree.rglob("*"))
    if len(paths) == 1 and paths[0].suffix == ".mbox":
        packed = tree.parent / paths[0].name  # as the exporter named it (the folder's name)
        os.replace(paths[0], packed)
    else:
        packed = tree.parent / f"{stem}.zip"
        _zip(tree, paths, packed, progress)
    fsync_folder(tree.parent)
    shutil.rmtree(tree)
    return packed


def _zip(tree: Path, paths: list[Path], packed: Path, progress: Progress) -> None:
    partial = packed.with_name(packed.name + ".partial")
    # Mail can be older than 1980, which zip cannot date: such files get 1980.
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as archive:
        for done, path in enumerate(paths, 1):
            archive.write(path, path.relative_to(tree).as_posix())
            progress("packing", done, len(paths))
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, packed)


def _raw(view: MessageView) -> Response:
    """A message's bytes as a download, never as a page a browser would render."""
    return Response(view.raw, media_type="message/rfc822", headers={
        "Content-Disposition": f'attachment; filename="{view.message.uid}.eml"',
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})


def _params(body: BaseModel, seen: _Seen) -> dict[str, Any]:
    """A job's parameters: what was asked, and the transaction it runs at."""
    return body.model_dump() | {"txn": seen.txn, "label": seen.label}


def _accepted(job: Job, **links: str) -> dict[str, Any]:
    return {**asdict(job), "links": {"self": f"/api/v1/jobs/{job.id}", **links}}


def _seconds(text: str | None) -> int | None:
    """A time of the search filters, in seconds since the epoch."""
    return parse_time(text) // 1000 if text is not None else None


def _folder_path(names: list[str]) -> tuple[str, ...]:
    """A folder path given as a list of names, each checked (a name with '/' is refused, never
    read as two)."""
    return tuple(check_folder_name(name) for name in names)
