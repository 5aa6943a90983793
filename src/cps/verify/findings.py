"""What `cps verify store` can find: a stable kind per problem, what `--repair` does about it, and
what to do when only a backup can mend it. `docs/verify.md` lists the same kinds; scripts may rely
on them."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESTORE = ("Restore the database from backup: cps restore REPO --db ID --to NEW.db --at TIME (a "
           "time before the damage), check it with cps verify store NEW.db, and put it in place of "
           "{path} while nothing uses it.")
RECOVER = ("Recover the message from backup: cps recover REPO --at TIME --mailbox {mailbox} "
           "--folder {folder} --message {message} --into {path}. The store takes the right bytes "
           "back for every message that shares them; then delete the recovered copy. Or restore "
           "the whole database with cps restore.")
KEPT = ("The bytes are kept. If a message is missing, recover it from backup with cps recover: "
        "it will use them again; otherwise they only take space.")


@dataclass(frozen=True, slots=True)
class Kind:
    layer: str  # "physical" (the SQLite file) or "logical" (the mail in it)
    repair: str | None  # what --repair does, or None: --repair leaves it
    remedy: str  # what to do instead; {path}, {mailbox}, {folder}, {message} are filled in


KINDS: dict[str, Kind] = {
    "truncated-file": Kind("physical", None, RESTORE),
    "not-wal": Kind("physical", "puts the database back in WAL mode", ""),
    "page-damaged": Kind("physical", None, RESTORE),
    "index-damaged": Kind("physical", "rebuilds the index from its table", ""),
    "unreadable": Kind("physical", None, RESTORE),
    "missing-body": Kind("logical", None, RECOVER),
    "body-hash-mismatch": Kind("logical", None, RECOVER),
    "body-size-wrong": Kind("logical", "sets the size from the body's bytes", ""),
    "unused-body": Kind("logical", None, KEPT),
    "folder-mailbox-missing": Kind("logical", None, RESTORE),
    "folder-parent-missing": Kind("logical", "moves the folder to the top of its mailbox", ""),
    "folder-cycle": Kind("logical", "moves the folder to the top of its mailbox", ""),
    "message-folder-missing": Kind("logical", None, RESTORE),
    "duplicate-uid": Kind("logical", "gives the message the folder's next UID, as a move would", ""),
    "uid-not-below-uidnext": Kind("logical", "raises UIDNEXT above the folder's highest UID", ""),
    "next-uidvalidity-behind": Kind("logical", "raises the next UIDVALIDITY above every folder's",
                                    ""),
    "text-index-missing": Kind("logical", "indexes the body's text again from its bytes", ""),
    "text-index-extra": Kind("logical", "removes the entry", ""),
    "text-index-damaged": Kind("logical", "rebuilds the full-text index from the text it keeps",
                               ""),
}


@dataclass(frozen=True, slots=True)
class Place:
    """The mailbox, folder, message, body, table or index a finding is about (what is known)."""

    mailbox_id: int | None = None
    mailbox: str | None = None  # its address
    folder_id: int | None = None
    folder: str | None = None  # its path, "Inbox/Projects"
    message_id: int | None = None
    uid: int | None = None
    header_id: str | None = None  # the message's Message-ID header field
    body_id: int | None = None
    table: str | None = None
    index: str | None = None

    def __str__(self) -> str:
        """In words: "alice@example.com/Inbox UID 3 (message 17)", "table body_raw"."""
        owner = self.mailbox or (None if self.mailbox_id is None else f"mailbox {self.mailbox_id}")
        parts = ["/".join(p for p in (owner, self.folder) if p)]
        if self.message_id is not None:
            parts.append(f"UID {self.uid} (message {self.message_id})")
        elif self.body_id is not None:
            parts.append(f"body {self.body_id}")
        if self.table is not None:
            parts.append(f"table {self.table}")
        if self.index is not None:
            parts.append(f"index {self.index}")
        return " ".join(p for p in parts if p) or "the database"

    def to_json(self) -> dict[str, Any]:
        return {
            "mailbox": None if self.mailbox_id is None else
            {"id": self.mailbox_id, "address": self.mailbox},
            "folder": None if self.folder_id is None else {"id": self.folder_id, "path": self.folder},
            "message": None if self.message_id is None else
            {"id": self.message_id, "uid": self.uid, "message_id": self.header_id},
            "body_id": self.body_id, "table": self.table, "index": self.index,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: its kind, what is wrong in words, and where."""

    kind: str
    detail: str
    place: Place = Place()

    @property
    def layer(self) -> str:
        return KINDS[self.kind].layer

    @property
    def repair(self) -> str | None:
        return KINDS[self.kind].repair

    @property
    def key(self) -> tuple[object, ...]:
        """The finding by kind and ids alone: the same problem found again has the same key,
        even where a repair changed a name (a folder moved has another path)."""
        place = self.place
        return (self.kind, place.mailbox_id, place.folder_id, place.message_id, place.body_id,
                place.table, place.index)

    def remedy(self, path: Path) -> str:
        """What to do when --repair cannot mend it, with this finding's names filled in."""
        place = self.place
        message = place.header_id if place.header_id else str(place.uid)
        return KINDS[self.kind].remedy.format(
            path=shlex.quote(str(path)), mailbox=shlex.quote(place.mailbox or "MAILBOX"),
            folder=shlex.quote(place.folder or "FOLDER"), message=shlex.quote(message))

    def to_json(self, path: Path) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "detail": self.detail,
                **self.place.to_json(), "repair": self.repair,
                "remedy": None if self.repair else self.remedy(path)}
