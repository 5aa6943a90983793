"""The records the store API returns. They are snapshots: reading one never touches the database."""

from __future__ import annotations

from dataclasses import dataclass

from .schema import SYSTEM_FLAGS


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    address: str
    display_name: str
    created_at: int
    deleted_at: int | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class Folder:
    id: int
    mailbox_id: int
    parent_id: int | None
    path: tuple[str, ...]
    role: str | None
    uidvalidity: int
    uidnext: int
    created_at: int
    messages: int = 0
    unseen: int = 0

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def path_text(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    folder_id: int
    uid: int
    internal_date: int
    flags: frozenset[str]
    size: int
    sha256: str
    message_id: str
    subject: str
    from_: str
    to: str
    cc: str
    sent_date: int | None
    has_attachments: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where one delivered or imported message landed."""

    message_id: int
    address: str
    folder_path: tuple[str, ...]
    uid: int


@dataclass(frozen=True, slots=True)
class Stats:
    mailboxes: int
    deleted_mailboxes: int
    folders: int
    messages: int
    message_bytes: int
    bodies: int
    body_bytes: int
    file_bytes: int
    wal_bytes: int


def flags_to_mask(flags: frozenset[str] | set[str] | tuple[str, ...]) -> tuple[int, str]:
    """Split flags into the system-flag bitmask and the sorted, space-separated keyword list."""
    mask = 0
    keywords = set()
    for flag in flags:
        canonical = _canonical_system_flag(flag)
        if canonical:
            mask |= SYSTEM_FLAGS[canonical]
        elif flag.startswith("\\"):
            raise ValueError(f"unknown system flag {flag!r}")
        elif flag and not any(c.isspace() or ord(c) < 32 for c in flag):
            keywords.add(flag)
        else:
            raise ValueError(f"invalid keyword {flag!r}")
    return mask, " ".join(sorted(keywords))


def mask_to_flags(mask: int, keywords: str) -> frozenset[str]:
    names = {name for name, bit in SYSTEM_FLAGS.items() if mask & bit}
    return frozenset(names | set(keywords.split()))


def _canonical_system_flag(flag: str) -> str | None:
    lowered = flag.lower()
    for name in SYSTEM_FLAGS:
        if name.lower() == lowered:
            return name
    return None
