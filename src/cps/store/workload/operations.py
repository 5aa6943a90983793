"""Choosing the workload's next operation and its targets, and the one transaction that carries it out.

The mix, as shares of all operations (`OPERATION_MIX`)::

    deliver 45%   read 25%   flag 10%   move 8%   delete 7%   expunge 3%
    folder_create 1%   folder_rename 0.5%   folder_delete 0.5%

Mailboxes are chosen with weights 1/sqrt(rank), so the first mailbox is busiest, as in real
organisations. Within a mailbox:

- deliver: to the Inbox; 8% are a copy of mail the user sent, filed in Sent Items already \\Seen;
  15% of the rest also go to one or two other mailboxes; 30% come from another mailbox's user.
- read: the oldest unseen of the 20 newest Inbox messages (any of them if all are seen), fetched
  and then marked \\Seen. With an empty Inbox it reads in another folder.
- flag: a message anywhere but Deleted Items (folders weighted by size): toggles \\Flagged (35%),
  sets \\Answered and \\Seen (25%), adds a keyword (25%), or removes a keyword, else \\Seen (15%).
- move: one message, or 2-3 neighbours (25%), from the Inbox (70%) or any folder to a user folder
  (80% when one exists), the Inbox or Junk Email. delete: the same to Deleted Items, from the Inbox
  60% of the time. expunge: the 1-5 oldest messages of Deleted Items, for good.
- folder_create: a Unicode name at the top level (40%), under the Inbox (30%) or under a user
  folder; at most 20 user folders per mailbox (then it deletes one instead) and 4 levels.
  folder_rename: a user folder gets a new name (70%) or moves under another parent.
  folder_delete: a user folder with its subfolders and their messages.

An operation with nothing to act on (a read with no messages, an expunge of an empty Deleted Items)
becomes a delivery. Every choice is drawn from the planner's random generator in a fixed order and
targets are taken from the database's state listed in a fixed order (folders by path, messages by
UID), so the same seed on the same starting database makes the same operations.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..database import MailDatabase
from ..models import Folder, Message
from ..schema import STANDARD_FOLDERS

Fields = dict[str, object]
MailSource = Callable[[str | None, Sequence[str] | None], tuple[bytes, str]]
"""Gives the raw bytes of the next message (from `sender` to `recipients`, None meaning outside
people) and where they came from."""

OPERATION_MIX: dict[str, float] = {
    "deliver": 0.45, "read": 0.25, "flag": 0.10, "move": 0.08, "delete": 0.07, "expunge": 0.03,
    "folder_create": 0.01, "folder_rename": 0.005, "folder_delete": 0.005,
}
OPERATIONS = (*OPERATION_MIX, "mailbox_create")

SEEN, ANSWERED, FLAGGED = "\\Seen", "\\Answered", "\\Flagged"
KEYWORDS = ("$Label1", "$Label2", "$Label3", "$Label4", "$Label5", "$ToDo", "NonJunk")
FOLDER_NAMES = (
    "Projekte", "Rechnungen 2026", "Reisen ✈", "Заказы", "お知らせ", "Προσφορές", "Café Crème",
    "Ärzte & Ämter", "Archive", "Clients", "Family", "Newsletters", "Zürich Büro", "数据备份",
    "עבודה", "Receipts", "Über uns", "Ideas 💡", "Naïve Bayes", "Şirket", "Ñandú",
)

SENT_SHARE = 0.08
MULTI_RECIPIENT_SHARE = 0.15
INTERNAL_SENDER_SHARE = 0.3
RECENT = 20
MAX_USER_FOLDERS = 20
MAX_DEPTH = 4

_STANDARD_PATHS = {role: (name,) for name, role in STANDARD_FOLDERS}
_MOVE_TARGET_ROLES = (None, "inbox", "junk")


@dataclass(frozen=True, slots=True)
class Planned:
    """An operation chosen and ready: `perform` runs its one transaction and returns the log fields."""

    op: str
    mailbox: str
    perform: Callable[[], Fields]
    size: int = 0  # bytes of a delivered message
    copies: int = 0  # mailboxes a delivery goes to


class Planner:
    def __init__(
        self, db: MailDatabase, rng: random.Random, mail: MailSource, addresses: Sequence[str]
    ) -> None:
        self.db = db
        self.rng = rng
        self.mail = mail
        self.addresses = tuple(addresses)
        self._address_weights = [1 / math.sqrt(rank) for rank in range(1, len(addresses) + 1)]
        self._planners: dict[str, Callable[[str, list[Folder]], Planned | None]] = {
            "read": self._read, "flag": self._flag, "move": self._move, "delete": self._delete,
            "expunge": self._expunge, "folder_create": self._folder_create,
            "folder_rename": self._folder_rename, "folder_delete": self._folder_delete,
        }

    def choose(self) -> tuple[str, str]:
        """The kind of the next operation and the mailbox it acts in."""
        kind = self.rng.choices(tuple(OPERATION_MIX), tuple(OPERATION_MIX.values()))[0]
        return kind, self.rng.choices(self.addresses, self._address_weights)[0]

    def plan(self, kind: str, address: str) -> Planned:
        if kind == "deliver":
            return self._deliver(address)
        return self._planners[kind](address, self.db.folders(address)) or self._deliver(address)

    def _deliver(self, address: str) -> Planned:
        rng = self.rng
        recipients = [address]
        folder: tuple[str, ...] | None = None
        flags: tuple[str, ...] = ()
        if rng.random() < SENT_SHARE:
            folder, flags = _STANDARD_PATHS["sent"], (SEEN,)
            raw, source = self.mail(address, None)
        else:
            others = [a for a in self.addresses if a != address]
            if others and rng.random() < MULTI_RECIPIENT_SHARE:
                recipients += rng.sample(others, min(len(others), rng.randint(1, 2)))
            senders = [a for a in others if a not in recipients]
            internal = senders and rng.random() < INTERNAL_SENDER_SHARE
            raw, source = self.mail(rng.choice(senders) if internal else None, recipients)
        digest = hashlib.sha256(raw).hexdigest()

        def perform() -> Fields:
            placed = self.db.deliver(raw, recipients, folder=folder, flags=flags)
            return {
                "source": source, "sha256": digest, "size": len(raw), "flags": list(flags),
                "message_ids": [d.message_id for d in placed],
                "deliveries": [
                    {"mailbox": d.address, "folder": list(d.folder_path), "uid": d.uid,
                     "message_id": d.message_id}
                    for d in placed
                ],
            }

        return Planned("deliver", address, perform, size=len(raw), copies=len(recipients))

    def _read(self, address: str, folders: list[Folder]) -> Planned | None:
        inbox = _role(folders, "inbox")
        folder = inbox if inbox.messages else self._busy_folder(folders)
        if folder is None:
            return None
        newest = self.db.messages(
            address, folder.path, limit=RECENT, offset=max(0, folder.messages - RECENT))
        if not newest:
            return None
        unseen = [m for m in newest if SEEN not in m.flags]
        message = unseen[0] if unseen else self.rng.choice(newest)
        self.db.fetch_raw(message.id)  # a client shows the message before marking it read
        return _flag_change("read", self.db, address, folder, [message], (SEEN,), ())

    def _flag(self, address: str, folders: list[Folder]) -> Planned | None:
        folder = self._busy_folder(folders)
        if folder is None:
            return None
        picked = self.db.messages(
            address, folder.path, limit=1, offset=self.rng.randrange(folder.messages))
        if not picked:
            return None
        add, remove = self._flag_choice(picked[0].flags)
        return _flag_change("flag", self.db, address, folder, picked, add, remove)

    def _flag_choice(self, flags: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        roll = self.rng.random()
        if roll < 0.35:
            return ((), (FLAGGED,)) if FLAGGED in flags else ((FLAGGED,), ())
        if roll < 0.6:
            return (ANSWERED, SEEN), ()
        if roll < 0.85:
            return (self.rng.choice(KEYWORDS),), ()
        keywords = sorted(flag for flag in flags if not flag.startswith("\\"))
        return (), ((self.rng.choice(keywords),) if keywords else (SEEN,))

    def _move(self, address: str, folders: list[Folder]) -> Planned | None:
        source = self._source_folder(folders, inbox_share=0.7)
        if source is None:
            return None
        targets = [f for f in folders if f.id != source.id and f.role in _MOVE_TARGET_ROLES]
        user_targets = [f for f in targets if f.role is None]
        if user_targets and self.rng.random() < 0.8:
            targets = user_targets
        target = self.rng.choice(targets)
        return self._relocate("move", address, source, target)

    def _delete(self, address: str, folders: list[Folder]) -> Planned | None:
        source = self._source_folder(folders, inbox_share=0.6)
        if source is None:
            return None
        return self._relocate("delete", address, source, _role(folders, "trash"))

    def _relocate(self, op: str, address: str, source: Folder, target: Folder) -> Planned | None:
        count = 1 if self.rng.random() < 0.75 else min(self.rng.randint(2, 3), source.messages)
        offset = self.rng.randrange(source.messages - count + 1)
        messages = self.db.messages(address, source.path, limit=count, offset=offset)
        if not messages:
            return None
        ids = [m.id for m in messages]

        def perform() -> Fields:
            uids = self.db.move(ids, address, target.path)
            return {
                "from": list(source.path), "to": list(target.path), "message_ids": ids,
                "from_uids": [m.uid for m in messages], "uids": uids,
                "sha256": [m.sha256 for m in messages],
            }

        return Planned(op, address, perform)

    def _expunge(self, address: str, folders: list[Folder]) -> Planned | None:
        trash = _role(folders, "trash")
        if not trash.messages:
            return None
        oldest = self.db.messages(address, trash.path, limit=self.rng.randint(1, 5))
        if not oldest:
            return None

        def perform() -> Fields:
            self.db.expunge([m.id for m in oldest])
            return {"folder": list(trash.path), **_about(oldest)}

        return Planned("expunge", address, perform)

    def _folder_create(self, address: str, folders: list[Folder]) -> Planned | None:
        user = [f for f in folders if f.role is None]
        if len(user) >= MAX_USER_FOLDERS:
            return self._folder_delete(address, folders)
        roll = self.rng.random()
        parents = [f.path for f in user if len(f.path) < MAX_DEPTH]
        if roll < 0.4 or (roll >= 0.7 and not parents):
            parent: tuple[str, ...] = ()
        elif roll < 0.7:
            parent = _role(folders, "inbox").path
        else:
            parent = self.rng.choice(parents)
        path = (*parent, self._fresh_name(folders, parent))

        def perform() -> Fields:
            created = self.db.create_folder(address, path)
            return {"folder": list(path), "folder_id": created.id,
                    "uidvalidity": created.uidvalidity}

        return Planned("folder_create", address, perform)

    def _folder_rename(self, address: str, folders: list[Folder]) -> Planned | None:
        user = [f for f in folders if f.role is None]
        if not user:
            return self._folder_create(address, folders)
        folder = self.rng.choice(user)
        parent = folder.path[:-1]
        if self.rng.random() < 0.3:
            parents = [(), _role(folders, "inbox").path] + [
                f.path for f in user if len(f.path) < MAX_DEPTH and not _within(f.path, folder.path)
            ]
            parent = self.rng.choice(parents)
        new_path = (*parent, self._fresh_name(folders, parent))

        def perform() -> Fields:
            renamed = self.db.rename_folder(address, folder.path, new_path)
            return {"from": list(folder.path), "to": list(new_path), "folder_id": renamed.id}

        return Planned("folder_rename", address, perform)

    def _folder_delete(self, address: str, folders: list[Folder]) -> Planned | None:
        user = [f for f in folders if f.role is None]
        if not user:
            return self._folder_create(address, folders)
        folder = self.rng.choice(user)
        subtree = [f for f in folders if _within(f.path, folder.path)]
        messages: list[Message] = []
        homes: list[list[str]] = []
        for member in subtree:
            held = self.db.messages(address, member.path) if member.messages else []
            messages += held
            homes += [list(member.path)] * len(held)

        def perform() -> Fields:
            self.db.delete_folder(address, folder.path)
            return {
                "folder": list(folder.path), "folder_id": folder.id,
                "folders": [list(f.path) for f in subtree],
                "message_ids": [m.id for m in messages], "message_folders": homes,
                "uids": [m.uid for m in messages], "sha256": [m.sha256 for m in messages],
            }

        return Planned("folder_delete", address, perform)

    def _busy_folder(self, folders: list[Folder]) -> Folder | None:
        """A folder with messages, Deleted Items aside, chosen in proportion to its size."""
        candidates = [f for f in folders if f.messages and f.role != "trash"]
        if not candidates:
            return None
        return self.rng.choices(candidates, [f.messages for f in candidates])[0]

    def _source_folder(self, folders: list[Folder], *, inbox_share: float) -> Folder | None:
        inbox = _role(folders, "inbox")
        if inbox.messages and self.rng.random() < inbox_share:
            return inbox
        return self._busy_folder(folders)

    def _fresh_name(self, folders: list[Folder], parent: tuple[str, ...]) -> str:
        """A folder name no sibling under `parent` has: a stock name, numbered if it is taken."""
        taken = {f.name for f in folders if f.path[:-1] == parent}
        base = self.rng.choice(FOLDER_NAMES)
        name, number = base, 2
        while name in taken:
            name, number = f"{base} {number}", number + 1
        return name


def _flag_change(
    op: str, db: MailDatabase, address: str, folder: Folder, messages: list[Message],
    add: tuple[str, ...], remove: tuple[str, ...],
) -> Planned:
    def perform() -> Fields:
        db.set_flags([m.id for m in messages], add=add, remove=remove)
        return {"folder": list(folder.path), **_about(messages), "add": list(add),
                "remove": list(remove)}

    return Planned(op, address, perform)


def _about(messages: list[Message]) -> Fields:
    return {"message_ids": [m.id for m in messages], "uids": [m.uid for m in messages],
            "sha256": [m.sha256 for m in messages]}


def _role(folders: list[Folder], role: str) -> Folder:
    return next(f for f in folders if f.role == role)


def _within(path: tuple[str, ...], ancestor: tuple[str, ...]) -> bool:
    return path[: len(ancestor)] == ancestor
