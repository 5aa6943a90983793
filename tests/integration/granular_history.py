"""A protected mail store with a known history, for the granular-recovery tests, and the workload
log turned into the diff it implies.

Before protection starts, three mailboxes get real corpus mail: alice a `Projects` tree (Enron
allen-p's inbox, notes_inbox and straw, some flagged, plus an empty subfolder) and one message
copied to her Inbox, so that a Message-ID is found twice; carol two folders; dave folders with
hostile names. Then `cps protect` runs in its own process and the history is:

    p0   workload run 1 (creates user001..user005)   p1   workload run 2   p2
         alice/Projects deleted, carol purged, workload run 3   p3

with no writer between a run and the recovery point after it. `expected_diff` computes, from the
workload's own logs only, what a diff between two of these points must report.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cps.config import Location
from cps.store import MailDatabase
from cps.store.transfer import Format, import_mail
from cps.store.workload import LogModel, read_log, replay
from tests.conftest import run_cps
from tests.integration.protect_helpers import at_argument, create_point, new_store

ALICE, CAROL, DAVE = "alice@example.com", "carol@example.com", "dave@example.com"
HOSTILE_NAMES = (
    "..‥", "．．", "\u2024\u2024", "a" * 255, "é" * 127, "dots. and spaces .", ".hidden", "...",
    "Inbox.Sub", "100%2E", "x.eml", "y.mbox", "cur", "new",
)
# (mailbox, folder path, sha256 of the raw bytes, flags, internal date)
Entry = tuple[str, tuple[str, ...], str, frozenset[str], int]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cps_json(*args: str | Path) -> Any:
    return json.loads(run_cps(*args, "--json").stdout)


@dataclass
class History:
    folder: Path
    db: Path
    repo: Location
    points: dict[str, int] = field(default_factory=dict)  # name -> txn
    between_p1_and_p2: str = ""  # an --at TIME whose state is p1's
    logs: list[Path] = field(default_factory=list)
    records_at: dict[str, int] = field(default_factory=dict)  # point -> log records before it
    ambiguous_message_id: str = ""
    before: dict[str, list[Entry]] = field(default_factory=dict)  # mailbox -> its mail at p0..p2

    def cps(self, command: str, *args: str | Path) -> Any:
        """A granular command on this repository that must succeed; its JSON output."""
        return cps_json(command, self.repo, *args)

    def refused(self, command: str, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
        """A granular command that must fail; what it printed."""
        result = run_cps(command, self.repo, *args, check=False)
        assert result.returncode != 0, f"cps {command} {args} succeeded: {result.stdout.decode()}"
        return result

    def records(self, point: str) -> list[dict[str, Any]]:
        """The workload's log records committed before `point`."""
        every = itertools.chain.from_iterable(read_log(log) for log in self.logs)
        return list(itertools.islice(every, self.records_at[point]))

    def run_workload(self, ops: int, seed: int) -> None:
        log = self.folder / f"workload-{seed}.jsonl"
        run_cps("store", "workload", self.db, "--ops", str(ops), "--seed", str(seed), "--log", log)
        self.logs.append(log)

    def point(self, name: str) -> None:
        self.points[name] = create_point(self.db, self.repo, name)
        self.records_at[name] = sum(len(log.read_bytes().splitlines()) for log in self.logs)


def fill_before_protection(history: History, corpus: Path) -> None:
    allen = corpus / "enron" / "allen-p"
    with MailDatabase.open(history.db) as db:
        for address in (ALICE, CAROL, DAVE):
            db.create_mailbox(address)
        for name in ("inbox", "notes_inbox", "straw"):
            import_mail(db, allen / name, ALICE, ("Projects", name), kind=Format.EML)
        db.create_folder(ALICE, "Projects/Empty")
        import_mail(db, allen / "notes_inbox", CAROL, ("Inbox", "Notes"), kind=Format.EML)
        import_mail(db, allen / "straw", CAROL, ("Archive",), kind=Format.EML)
        for address, path in ((ALICE, "Projects/inbox"), (CAROL, "Archive")):
            listed = db.messages(address, path)
            db.set_flags([m.id for m in listed[::3]], add=["\\Seen"])
            db.set_flags([m.id for m in listed[::7]], add=["\\Flagged", "$Client"])
        first = db.messages(ALICE, "Projects/inbox")[0]
        db.copy([first.id], ALICE, "Inbox")
        history.ambiguous_message_id = first.message_id
        for n, name in enumerate(HOSTILE_NAMES):
            db.create_folder(DAVE, ("Inbox", name) if n % 2 else (name,), parents=True)
            raw = f"Subject: hostile {n}\r\nMessage-ID: <h{n}@example.org>\r\n\r\n{name}\r\n"
            db.deliver(raw.encode(), [DAVE], folder=("Inbox", name) if n % 2 else (name,))
        history.before = {a: mail_of(db, a) for a in (ALICE, CAROL, DAVE)}


def make_history(folder: Path, corpus: Path, repo: Location | None = None) -> History:
    """The store and its first history, up to the protector, protected into `repo` (by default
    `folder`/repo); the caller starts the protector and then calls `live_history`."""
    history = History(folder, folder / "mail.db", folder / "repo" if repo is None else repo)
    new_store(history.db, history.repo)
    fill_before_protection(history, corpus)
    return history


def live_history(history: History) -> None:
    """p0 .. p3, while a protector runs (see the module docstring)."""
    history.point("p0")
    history.run_workload(ops=120, seed=11)
    history.point("p1")
    history.between_p1_and_p2 = at_argument(int(time.time() * 1000))
    history.run_workload(ops=200, seed=24)  # renames and deletes folders that p1 has
    history.point("p2")
    run_cps("store", "folder", "delete", history.db, f"{ALICE}/Projects")
    run_cps("store", "mailbox", "delete", history.db, CAROL, "--purge")
    history.run_workload(ops=60, seed=13)
    history.point("p3")


def mail_of(db: MailDatabase, address: str, below: tuple[str, ...] = ()) -> list[Entry]:
    """Every message of a mailbox (folders below `below`, paths relative to it), sorted."""
    entries = []
    with db.read():
        for folder in db.folders(address):
            if folder.path[: len(below)] != below:
                continue
            for m in db.messages(address, folder.path):
                entries.append((address, folder.path[len(below):], sha(db.fetch_raw(m.id)),
                                m.flags, m.internal_date))
    return sorted(entries, key=lambda e: (e[1], e[2], sorted(e[3]), e[4]))


# The oracle: the diff the workload's log implies


def folder_identities(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, tuple[str, ...]], Any]:
    """(mailbox, path) -> an identity that survives renames, replayed from the log."""
    folders: dict[tuple[str, tuple[str, ...]], Any] = {}
    for r in records:
        if "error" in r:
            continue
        box = r["mailbox"]
        if r["op"] == "mailbox_create":
            folders.update({(box, tuple(p)): ("standard", box, tuple(p)) for p in r["folders"]})
        elif r["op"] == "folder_create":
            folders[(box, tuple(r["folder"]))] = (r["folder_id"], r["uidvalidity"])
        elif r["op"] == "folder_rename":
            old, new = tuple(r["from"]), tuple(r["to"])
            folders = {(b, new + p[len(old):] if b == box and p[: len(old)] == old else p): token
                       for (b, p), token in folders.items()}
        elif r["op"] == "folder_delete":
            top = tuple(r["folder"])
            folders = {(b, p): t for (b, p), t in folders.items()
                       if not (b == box and p[: len(top)] == top)}
    return folders


def expected_diff(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """What a diff from the state after `before` to the state after `after` must say, in the
    shape of `comparable`."""
    folders_a, folders_b = folder_identities(before), folder_identities(after)
    where_a = {token: key for key, token in folders_a.items()}
    where_b = {token: key for key, token in folders_b.items()}
    model_a, model_b = replay(before), replay(after)
    messages_a, messages_b = _identities(model_a), _identities(model_b)
    common = messages_a.keys() & messages_b.keys()
    return {
        "mailboxes_created": sorted({r["mailbox"] for r in after[len(before):]
                                     if r.get("op") == "mailbox_create"}),
        "mailboxes_deleted": [],  # the workload never deletes a mailbox
        "folders_created": sorted(where_b[t] for t in where_b.keys() - where_a.keys()),
        "folders_deleted": sorted(where_a[t] for t in where_a.keys() - where_b.keys()),
        "folders_renamed": sorted((where_a[t][0], where_a[t][1], where_b[t][1])
                                  for t in where_a.keys() & where_b.keys()
                                  if where_a[t] != where_b[t]),
        "messages_added": sorted(_place(messages_b[k]) for k in messages_b.keys() - common),
        "messages_deleted": sorted(_place(messages_a[k]) for k in messages_a.keys() - common),
        "messages_moved": sorted(
            (k[0], _place(messages_a[k]), _place(messages_b[k])) for k in common
            if folders_a[_folder(messages_a[k])] != folders_b[_folder(messages_b[k])]),
        "flags_changed": sorted(
            (k[0], sorted(messages_b[k].flags - messages_a[k].flags),
             sorted(messages_a[k].flags - messages_b[k].flags))
            for k in common if messages_a[k].flags != messages_b[k].flags),
    }


def comparable(diff: Mapping[str, Any]) -> dict[str, Any]:
    """A `cps diff --json` document in the shape of `expected_diff`."""
    def place(m: Mapping[str, Any]) -> tuple[str, tuple[str, ...], int]:
        return m["mailbox"], tuple(m["folder"]), m["uid"]
    return {
        "mailboxes_created": sorted(diff["mailboxes_created"]),
        "mailboxes_deleted": sorted(diff["mailboxes_deleted"]),
        "folders_created": sorted((f["mailbox"], tuple(f["path"])) for f in diff["folders_created"]),
        "folders_deleted": sorted((f["mailbox"], tuple(f["path"])) for f in diff["folders_deleted"]),
        "folders_renamed": sorted((f["mailbox"], tuple(f["from"]), tuple(f["to"]))
                                  for f in diff["folders_renamed"]),
        "messages_added": sorted(place(m) for m in diff["messages_added"]),
        "messages_deleted": sorted(place(m) for m in diff["messages_deleted"]),
        "messages_moved": sorted((m["id"], place(m["from"]), place(m["to"]))
                                 for m in diff["messages_moved"]),
        "flags_changed": sorted((m["id"], m["added"], m["removed"]) for m in diff["flags_changed"]),
    }


def _identities(model: LogModel) -> dict[tuple[int, str], Any]:
    return {(message_id, m.sha256): m for message_id, m in model.messages.items()}


def _place(m: Any) -> tuple[str, tuple[str, ...], int]:
    return m.mailbox, tuple(m.folder), m.uid


def _folder(m: Any) -> tuple[str, tuple[str, ...]]:
    return m.mailbox, tuple(m.folder)
