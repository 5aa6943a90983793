"""Mail at a point in time over HTTP, under /api/v1/databases/{db_id}/mail: what `cps browse`,
`show`, `search`, `diff` and `recover` do, through mail_access.py, which the console shares.

- Every endpoint needs the operator role: an auditor sees status and timelines, never mail.
- The point is the `point` parameter (`latest`, `txn:N`, `point:NAME`, `at:TIME` or a time), read
  by `cps.granular.parse_point`. Every answer says which transaction it shows; page with
  `point=txn:N`, since `latest` and relative times move on.
- A folder path is a list of names, each checked as the store checks names: the `folder` query
  parameter once per name from the top, a JSON list in bodies. A mailbox is a path segment; a
  message is the last part of the path: a UID in `folder`, or a Message-ID (slashes and all).
- Recoveries and exports are jobs (a wrong mailbox, folder or message is a 4xx answer, not a
  failed job); an export's file is downloaded from /api/v1/jobs/{id}/file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Response
from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError
from ..granular import MessageView, RecoverRequest
from ..granular.browse import MOST_SKIPPED, folder_row
from ..restore import parse_time
from ..store import SearchQuery
from ..store.names import check_address, check_folder_name
from ..store.transfer import Format
from .auth import Principal
from .jobs import Job
from .mail_access import MailAccess

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
        return RecoverRequest(check_address(self.mailbox), folder_path(self.folder),
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


def add_routes(app: FastAPI, mail: MailAccess, operator_role: Callable[..., Principal]) -> None:
    """Serve mail at a point in time on `app` to whom `operator_role` (a dependency) admits."""
    operator = Depends(operator_role)  # as a default: this module's annotations are strings
    _browse_routes(app, mail, operator)
    _search_routes(app, mail, operator)
    _job_routes(app, mail, operator)


def _browse_routes(app: FastAPI, mail: MailAccess, operator: Any) -> None:
    @app.get(MAIL + "/mailboxes")
    def list_mailboxes(db_id: str, point: str = POINT, who: Principal = operator
                       ) -> dict[str, Any]:
        seen, listed = mail.mailboxes(who, db_id, point)
        return {"point": seen, "mailboxes": [m.as_dict() for m in listed]}

    @app.get(MAILBOX + "/folders")
    def list_folders(db_id: str, address: str, point: str = POINT, who: Principal = operator
                     ) -> dict[str, Any]:
        address = check_address(address)
        seen, tree = mail.folders(who, db_id, point, address)
        return {"point": seen, "mailbox": address, "folders": [folder_row(f) for f in tree]}

    @app.get(MAILBOX + "/messages")
    def list_messages(db_id: str, address: str, point: str = POINT, folder: list[str] = FOLDER,
                      limit: int = Query(100, ge=1, le=MOST_LISTED),
                      offset: int = Query(0, ge=0, le=MOST_SKIPPED),
                      who: Principal = operator) -> dict[str, Any]:
        address, path = check_address(address), folder_path(folder)
        if not path:
            raise UsageError("name the folder to list", hint="Give its path as folder=NAME, one "
                             "parameter a name; the folder tree is at .../folders.")
        return mail.messages(who, db_id, point, address, path, limit=limit, offset=offset)

    @app.get(MAILBOX + "/messages/{selector:path}", response_model=None)
    def show(db_id: str, address: str, selector: str = PathParameter(max_length=1000),
             point: str = POINT, folder: list[str] = FOLDER, raw: bool = False,
             who: Principal = operator) -> dict[str, Any] | Response:
        address, path = check_address(address), folder_path(folder)
        seen, view = mail.show(who, db_id, point, address, path, selector, raw=raw)
        return message_download(view) if raw else {"point": seen, "message": view.as_dict()}


def _search_routes(app: FastAPI, mail: MailAccess, operator: Any) -> None:
    @app.get(MAIL + "/search")
    def search_mail(db_id: str, filters: SearchFilters = FILTERS, who: Principal = operator
                    ) -> dict[str, Any]:
        address = check_address(filters.mailbox) if filters.mailbox is not None else None
        path = folder_path(filters.folder)
        if path and address is None:
            raise UsageError("folder needs mailbox", hint="Name the mailbox the folder is in.")
        seen, hits = mail.search(
            who, db_id, filters.point, filters.query(), address, path,
            **filters.model_dump(exclude={"point"}, by_alias=True, exclude_none=True))
        return {"point": seen, "hits": [hit.as_dict() for hit in hits]}

    @app.get(MAIL + "/diff")
    def diff(db_id: str, earlier: str = Query(alias="from", max_length=300),
             later: str | None = Query(None, alias="to", max_length=300), live: bool = False,
             mailbox: str | None = None, who: Principal = operator) -> dict[str, Any]:
        if (later is None) != live:
            raise UsageError("give exactly one of to=POINT and live=true",
                             hint="to compares two points; live=true compares with the database "
                                  "as it is now.")
        address = check_address(mailbox) if mailbox else None
        compared = mail.compare(who, db_id, earlier, later, address)
        return ({"from": compared.earlier, "to": compared.later, "mailbox": address}
                | compared.diff.as_dict())


def _job_routes(app: FastAPI, mail: MailAccess, operator: Any) -> None:
    @app.post(MAIL + "/recoveries", status_code=202)
    def recover(db_id: str, body: RecoverBody, who: Principal = operator) -> dict[str, Any]:
        job = mail.recover(who, db_id, body.point, body.request(),
                           body.model_dump(exclude={"point"}))
        return _accepted(job)

    @app.post(MAIL + "/exports", status_code=202)
    def export(db_id: str, body: ExportBody, who: Principal = operator) -> dict[str, Any]:
        address, path = check_address(body.mailbox), folder_path(body.folder)
        job = mail.export(who, db_id, body.point, address, path, Format(body.format),
                          body.model_dump(exclude={"point"}))
        return _accepted(job, file=f"/api/v1/jobs/{job.id}/file")


def message_download(view: MessageView) -> Response:
    """A message's bytes as a download, never as a page a browser would render."""
    return Response(view.raw, media_type="message/rfc822", headers={
        "Content-Disposition": f'attachment; filename="{view.message.uid}.eml"',
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})


def _accepted(job: Job, **links: str) -> dict[str, Any]:
    return {**asdict(job), "links": {"self": f"/api/v1/jobs/{job.id}", **links}}


def _seconds(text: str | None) -> int | None:
    """A time of the search filters, in seconds since the epoch."""
    return parse_time(text) // 1000 if text is not None else None


def folder_path(names: list[str]) -> tuple[str, ...]:
    """A folder path given as a list of names, each checked (a name with '/' is refused, never
    read as two)."""
    return tuple(check_folder_name(name) for name in names)
