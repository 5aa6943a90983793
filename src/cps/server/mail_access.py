"""Mail at a point in time, as the server gives it to its two faces: the JSON API (mail_api.py)
and the web console (console/). Both only parse a request and render what these calls return.

- A point is named as `cps.granular.parse_point` reads it (`latest`, `txn:N`, `point:NAME`,
  `at:TIME` or a time); every result carries the point as seen, with the transaction it is, so
  that a client pages at `txn:N` while `latest` and relative times move on.
- Points stay open between requests (open_points.py).
- Each look at mail, and each recovery and export, is written to the audit log, with who, the
  database and the point, before the result is returned.
- Recoveries and exports are jobs, checked before they are accepted (a wrong mailbox, folder or
  message is refused at once, not a failed job) and run at the transaction the request saw. An
  export is one mbox file, or a zip of the exported tree.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..durable import fsync_folder
from ..granular import (
    Diff,
    MailboxSummary,
    MessageView,
    RecoverRequest,
    SearchHit,
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
from ..granular.browse import folder_page
from ..granular.select import select_folders
from ..repository import Repository
from ..restore import Target, format_ms
from ..store import Folder, MailDatabase, SearchQuery
from ..store.transfer import Format, export_mail
from .auth import Principal
from .jobs import Job, Progress, Work
from .open_points import OpenPoints
from .service import Service

FolderPath = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Seen:
    """A point as one request sees it: the database then (valid inside the block that gave it),
    and how answers and the audit name it."""

    database: MailDatabase
    db_id: str
    txn: int
    label: str
    point: dict[str, Any]

    @classmethod
    def of(cls, snapshot: Snapshot, target: Target) -> Seen:
        label = point_label(target, snapshot.txn)
        when = format_ms(snapshot.txn_time) if snapshot.txn_time is not None else None
        return cls(snapshot.database, snapshot.db_id, snapshot.txn, label,
                   snapshot.describe() | {"txn_time": when, "label": label})


@dataclass(frozen=True, slots=True)
class FolderListing:
    """What a browser shows at once: the mailboxes, one mailbox's folders, one folder's page."""

    point: dict[str, Any]
    mailboxes: list[MailboxSummary]
    address: str | None  # the mailbox whose folders these are
    folders: list[Folder]
    page: dict[str, Any] | None  # folder_page's answer, when a folder was named


@dataclass(frozen=True, slots=True)
class Compared:
    earlier: dict[str, Any]  # the point
    later: dict[str, Any]  # the point, or {"live": path}
    diff: Diff


class MailAccess:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.points = OpenPoints()
        service.on_stop.append(self.points.close)

    @contextmanager
    def at(self, db_id: str, *specs: str) -> Iterator[list[Seen]]:
        """Database `db_id` at each point `specs` names, in that order."""
        self.service.settings(db_id)  # an unknown database is named as such
        targets = [parse_point(spec) for spec in specs]
        with self.points.use(self.service.repository(db_id), db_id, *targets) as snapshots:
            yield [Seen.of(s, t) for s, t in zip(snapshots, targets, strict=True)]

    def audit(self, who: Principal, action: str, seen: Seen, **details: Any) -> None:
        self.service.audit.record(who, action, seen.db_id, point=seen.label, txn=seen.txn,
                                  **details)

    def mailboxes(self, who: Principal, db_id: str, point: str
                  ) -> tuple[dict[str, Any], list[MailboxSummary]]:
        with self.at(db_id, point) as [seen]:
            listed = mailboxes(seen.database)
        self.audit(who, "browse", seen)
        return seen.point, listed

    def folders(self, who: Principal, db_id: str, point: str, address: str
                ) -> tuple[dict[str, Any], list[Folder]]:
        with self.at(db_id, point) as [seen]:
            tree = folder_tree(seen.database, address)
        self.audit(who, "browse", seen, mailbox=address)
        return seen.point, tree

    def messages(self, who: Principal, db_id: str, point: str, address: str, path: FolderPath,
                 *, limit: int, offset: int) -> dict[str, Any]:
        with self.at(db_id, point) as [seen]:
            page = folder_page(seen.database, address, path, limit=limit, offset=offset)
        self.audit(who, "browse", seen, mailbox=address, folder=list(path), offset=offset,
                   limit=limit)
        return {"point": seen.point, **page}

    def listing(self, who: Principal, db_id: str, point: str, address: str | None,
                path: FolderPath, *, limit: int, offset: int) -> FolderListing:
        """The mailboxes at `point`, the folders of `address` (default: the first mailbox) and a
        page of the folder `path` (none when no folder is named), in one look."""
        with self.at(db_id, point) as [seen]:
            boxes = mailboxes(seen.database)
            address = address or (boxes[0].address if boxes else None)
            tree = folder_tree(seen.database, address) if address else []
            page = (folder_page(seen.database, address, path, limit=limit, offset=offset)
                    if address and path else None)
        self.audit(who, "browse", seen, mailbox=address, folder=list(path), offset=offset,
                   limit=limit)
        return FolderListing(seen.point, boxes, address, tree, page)

    def show(self, who: Principal, db_id: str, point: str, address: str, path: FolderPath,
             selector: str, *, raw: bool = False) -> tuple[dict[str, Any], MessageView]:
        with self.at(db_id, point) as [seen]:
            view = show_message(seen.database, address, path, selector)
        self.audit(who, "show", seen, mailbox=address, folder=list(view.folder),
                   uid=view.message.uid, message_id=view.message.message_id, raw=raw)
        return seen.point, view

    def search(self, who: Principal, db_id: str, point: str, query: SearchQuery,
               address: str | None, path: FolderPath, **asked: Any
               ) -> tuple[dict[str, Any], list[SearchHit]]:
        """Hits of `query` at `point`; `asked` is the request's filters, for the audit."""
        with self.at(db_id, point) as [seen]:
            hits = search(seen.database, query, mailbox=address, folder=path)
        self.audit(who, "search", seen, hits=len(hits), **asked)
        return seen.point, hits

    def compare(self, who: Principal, db_id: str, earlier: str, later: str | None,
                address: str | None) -> Compared:
        """The changes from `earlier` to `later`, or to the live database when `later` is None."""
        live_path = self.service.settings(db_id).path
        with self.at(db_id, earlier, *([] if later is None else [later])) as seen, \
                ExitStack() as stack:
            now = (seen[1].database if later is not None
                   else stack.enter_context(MailDatabase.open(live_path, readonly=True)))
            changes = diff_databases(seen[0].database, now, mailbox=address)
        to = seen[1].point if later is not None else {"live": str(live_path)}
        self.audit(who, "diff", seen[0], to=seen[1].label if later is not None else "live",
                   mailbox=address)
        return Compared(seen[0].point, to, changes)

    def recover(self, who: Principal, db_id: str, point: str, request: RecoverRequest,
                asked: dict[str, Any]) -> Job:
        """A job recovering `request` from `point` into the live database; `asked` is the rest
        of the request as given, kept with the job and in the audit."""
        live_path = self.service.settings(db_id).path
        with self.at(db_id, point) as [seen], \
                MailDatabase.open(live_path, readonly=True) as live:
            select_recovery(seen.database, live, request)  # refused now, not in the job
        work = _recovery(self.service.repository(db_id), seen, request, live_path)
        job = self.service.jobs.submit("recover", db_id, who.name, _params(point, asked, seen),
                                       work)
        self.audit(who, "recover", seen, job=job.id, **asked)
        return job

    def export(self, who: Principal, db_id: str, point: str, address: str, path: FolderPath,
               kind: Format, asked: dict[str, Any]) -> Job:
        """A job exporting a folder with its subfolders, or a mailbox, at `point`."""
        with self.at(db_id, point) as [seen]:
            select_folders(seen.database, address, path)  # refused now, not in the job
        work = _export(self.service.repository(db_id), seen, address, path, kind)
        job = self.service.jobs.submit("export", db_id, who.name, _params(point, asked, seen),
                                       work)
        self.audit(who, "export", seen, job=job.id, **asked)
        return job


def _recovery(repo: Repository, seen: Seen, request: RecoverRequest, live_path: Path) -> Work:
    """The job that recovers `request` into the live database, from the transaction `seen` is."""
    def work(_files: Path, progress: Progress) -> dict[str, Any]:
        with open_snapshot(repo, seen.db_id, Target("txn", seen.txn)) as snapshot, \
                MailDatabase.open(live_path) as live:
            report = recover_into(snapshot.database, seen.label, live, request, progress)
        return {"point": seen.point, "recover": report.as_dict()}
    return work


def _export(repo: Repository, seen: Seen, address: str, path: FolderPath, kind: Format) -> Work:
    """The job that exports at the transaction `seen` is, into one file of its folder."""
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


def _params(point: str, asked: dict[str, Any], seen: Seen) -> dict[str, Any]:
    """A job's parameters: what was asked, and the transaction it runs at."""
    return {"point": point, **asked, "txn": seen.txn, "label": seen.label}
