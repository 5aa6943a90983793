"""Putting mail from a point in time back into the live store.

Into the live store (`recover_into`): the chosen messages, folders (with their subfolders) or a
whole mailbox are added to a mailbox of the live database with `MailDatabase.append`, keeping each
message's bytes, flags and internal date; the envelope, attachment list and indexed text the
snapshot derived from the same bytes go with them, so nothing is parsed again. By default they go
below `Recovered Items/<point>/` keeping their folder paths, so nothing the user has now is mixed
with the past; `merge` puts them back at their original paths instead, creating folders that are
missing. A message whose content (SHA-256) is already in its target folder is skipped, counting
copies, so running a recovery again adds nothing, and a recovery that stopped half way completes.
Messages are added in batches, each one short transaction, so the live store keeps receiving mail
meanwhile; nothing is ever removed or changed in it.

Export needs nothing of its own: `cps.store.transfer.export_mail(snapshot.database, ...)` writes a
folder with its subfolders, or a whole mailbox, of the snapshot as Maildir, mbox or .eml files, and
keeps every file inside the destination whatever the folder names.
"""

from __future__ import annotations

import contextlib
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import AlreadyExists, NotFound, UsageError
from ..store import AppendItem, MailDatabase
from .select import FolderPath, Located, messages_in, select_folders, select_message

Progress = Callable[[str, int, int], None]  # (stage, done, total)

RECOVERED_ITEMS = "Recovered Items"
BATCH_MESSAGES = 500
BATCH_BYTES = 16 << 20
_MAX_LABEL_BYTES = 200


@dataclass(frozen=True, slots=True)
class RecoverRequest:
    """What to recover: a mailbox as it was, or a folder of it (with subfolders), or messages."""

    mailbox: str
    folder: FolderPath = ()
    messages: tuple[str, ...] = ()  # selectors: UIDs in `folder`, or Message-IDs
    target_mailbox: str | None = None  # default: the same address in the live store
    merge: bool = False
    batch: int = BATCH_MESSAGES


@dataclass(frozen=True, slots=True)
class RecoverReport:
    source: str  # mailbox, or mailbox/folder
    target_mailbox: str
    target_folder: FolderPath  # where the recovered paths start: () when merged
    folders: int  # folders recovered (with messages, or created empty)
    folders_created: int
    recovered: int
    skipped_present: int
    recovered_bytes: int
    batches: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target_mailbox": self.target_mailbox,
                "target_folder": list(self.target_folder), "folders": self.folders,
                "folders_created": self.folders_created, "recovered": self.recovered,
                "skipped_present": self.skipped_present, "recovered_bytes": self.recovered_bytes,
                "batches": self.batches, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True, slots=True)
class Selection:
    """What a request recovers, found in the snapshot: the messages, the folder paths they come
    from (the empty folders of a recovered tree too), and the live mailbox they go to."""

    address: str
    target: str
    chosen: list[Located]
    paths: set[FolderPath]


def select_recovery(source: MailDatabase, live: MailDatabase, request: RecoverRequest
                    ) -> Selection:
    """Every check `recover_into` makes before its first write (the mailbox, folder and messages
    existed in `source`, the target mailbox exists in `live`, which is only read), and what it
    would recover. NotFound or UsageError when a check fails."""
    if request.batch < 1:
        raise UsageError("the batch size must be at least 1")
    address = request.mailbox.strip().lower()
    target = (request.target_mailbox or address).strip().lower()
    _require_live_mailbox(live, target)
    with source.read():
        folders = select_folders(source, address, request.folder)
        if request.messages:
            picked = [select_message(source, address, request.folder, s) for s in request.messages]
            chosen = list({hit.message.id: hit for hit in picked}.values())
            return Selection(address, target, chosen, {hit.folder.path for hit in chosen})
        return Selection(address, target, list(messages_in(source, address, folders)),
                         {f.path for f in folders})


def recover_into(source: MailDatabase, label: str, live: MailDatabase, request: RecoverRequest,
                 progress: Progress | None = None) -> RecoverReport:
    """Recover from `source` (a snapshot) into `live` (see the module docstring); `label` names
    the point, for the `Recovered Items` folder. `progress` hears of the chosen messages done
    (added, or skipped as already there) after every batch."""
    started = time.monotonic()
    picked = select_recovery(source, live, request)
    target, chosen = picked.target, picked.chosen
    root = () if request.merge else (RECOVERED_ITEMS, folder_label(label))
    existing_before = {f.path for f in live.folders(target)}
    for path in sorted(picked.paths):  # empty folders too, and parents before children
        if root + path not in existing_before:
            with contextlib.suppress(AlreadyExists):  # made meanwhile by another writer
                live.create_folder(target, root + path, parents=True)
    present = _present(live, target, {root + path for path in picked.paths})
    recovered = skipped = size = batches = 0
    report = progress or _quiet
    for batch, done in _batches(source, chosen, root, present, request.batch):
        live.append(target, batch)
        recovered += len(batch)
        size += sum(len(item.raw) for item in batch)
        batches += 1
        report("messages", done, len(chosen))
    report("messages", len(chosen), len(chosen))  # those skipped after the last batch
    skipped = len(chosen) - recovered
    created = len({f.path for f in live.folders(target)} - existing_before)
    where = "/".join((picked.address, *request.folder))
    return RecoverReport(where, target, root, len(picked.paths), created, recovered, skipped,
                         size, batches, time.monotonic() - started)


def folder_label(label: str) -> str:
    """`label` made into a valid folder name: no '/', no control characters, not '.' or '..',
    no white space at the ends, at most 200 bytes."""
    cleaned = "".join(
        " " if c == "/" or unicodedata.category(c) in ("Cc", "Cs", "Cf") else c
        for c in unicodedata.normalize("NFC", label))
    cleaned = " ".join(cleaned.split())
    while len(cleaned.encode()) > _MAX_LABEL_BYTES:
        cleaned = cleaned[:-1].rstrip()
    return cleaned if cleaned.strip(".") else "point"


def _require_live_mailbox(live: MailDatabase, address: str) -> None:
    try:
        live.mailbox(address)
    except NotFound as missing:
        raise NotFound(
            f"no mailbox {address} in the live store to recover into",
            hint=" ".join(filter(None, [missing.hint, "Create it first ('cps store mailbox "
                                        "create'), or recover into another mailbox "
                                        "(--target-mailbox; target_mailbox over the API)."])),
        ) from None


def _present(live: MailDatabase, address: str, paths: set[FolderPath]) -> dict[FolderPath, Counter[str]]:
    """How many copies of each content every target folder holds now."""
    with live.read():
        return {path: Counter(m.sha256 for m in live.messages(address, path)) for path in paths}


def _batches(source: MailDatabase, chosen: list[Located], root: FolderPath,
             present: dict[FolderPath, Counter[str]], size: int
             ) -> Iterator[tuple[list[AppendItem], int]]:
    """Batches of the chosen messages not yet in their target folder, each with how many of
    `chosen` are done once it is added."""
    batch: list[AppendItem] = []
    held = 0
    for done, hit in enumerate(chosen, 1):
        path = root + hit.folder.path
        copies = present[path]
        if copies[hit.message.sha256] > 0:
            copies[hit.message.sha256] -= 1
            continue
        raw = source.fetch_raw(hit.message.id)
        # The snapshot's own envelope of these bytes: nothing is parsed again.
        batch.append(AppendItem(path, raw, hit.message.internal_date,
                                tuple(sorted(hit.message.flags)), source.envelope(hit.message.id)))
        held += len(raw)
        if len(batch) >= size or held >= BATCH_BYTES:
            yield batch, done
            batch, held = [], 0
    if batch:
        yield batch, len(chosen)


def _quiet(_stage: str, _done: int, _total: int) -> None:
    pass
