"""What `cps verify repo` can find in a backup repository: a stable kind per problem, the file it
is in, and what it costs, as transactions and times that can no longer be restored.
`docs/verify.md` lists the same kinds; scripts may rely on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..repository.catalog import Hole

# What each kind means (docs/verify.md has the same table).
REPO_KINDS: dict[str, str] = {
    "segment-damaged": "a log segment fails its checks",
    "full-damaged": "a full backup fails its checks",
    "pages-missing": "pages a full backup lists are in no readable pack",
    "pack-damaged": "a pack fails its checks, or holds pages that do not match their ids",
    "log-missing": "transactions of a chain have no log or full backup (a file was deleted)",
    "point-unrestorable": "a recovery point's transaction cannot be restored",
    "point-damaged": "a recovery point's file fails its checks (its name is lost)",
    "chain-file-damaged": "a chain's chain file is missing or fails its checks",
    "status-damaged": "the protector's status file fails its checks",
    "prune-record-damaged": "a prune record fails its checks",
    "database-file-damaged": "a database's description file fails its checks",
    "drill-record-damaged": "a restore drill's record fails its checks",
}

COPY_BACK = ("Files never change once written: if a copy of the repository holds this file "
             "intact, copy it back.")
# Later full backups of a chain are made from its earlier one and the log (capture/full_process.py),
# so none can bridge a hole: only a new chain, whose first full backup reads the live database.
NEW_CHAIN = ("Capture goes on in the chain, but nothing after the hole is restorable until a new "
             "chain starts: stop cps protect, move the damaged file out of the repository (keep "
             "it), and start cps protect again; with log missing at the end of its chain it "
             "starts a new one with a full backup.")


@dataclass(frozen=True, slots=True)
class Lost:
    """Transactions of one chain that cannot be restored, and the times around them."""

    chain: int
    first_txn: int
    last_txn: int
    after_time: int | None  # they came after this time ...
    before_time: int | None  # ... and before this one, as far as the repository tells

    @classmethod
    def of(cls, hole: Hole) -> Lost:
        return cls(hole.chain, hole.first_txn, hole.last_txn, hole.after_time, hole.before_time)

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "first_txn": self.first_txn, "last_txn": self.last_txn,
                "after_time": self.after_time, "before_time": self.before_time}


@dataclass(frozen=True, slots=True)
class RepoFinding:
    """One problem: its kind, the file (or folder) it is in, what is wrong, what it costs and
    what to do."""

    kind: str
    path: str
    detail: str
    todo: str
    db_id: str | None = None
    chain: int | None = None
    lost: Lost | None = None  # the transactions it makes unrestorable; None: none

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "detail": self.detail, "todo": self.todo,
                "db_id": self.db_id, "chain": self.chain,
                "lost": None if self.lost is None else self.lost.to_json()}
