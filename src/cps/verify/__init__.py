"""Verification: is a mail database, or a backup repository, sound, and if not, what is damaged,
where, and what to do.

Owns `cps verify store`: the physical checks of a mail database file (SQLite's header, WAL mode,
SQLite's check of every page) and the logical checks of the mail in it (every body there and
matching its SHA-256, folder trees, UIDs and UIDNEXT, cached sizes, the full-text index), each
problem a `Finding` of a stable kind (`docs/verify.md`). It reads the store's tables itself, to
look under the API it checks; every repair is asked of the store (`MailDatabase.repairing`),
which alone writes a mail database. It sits with the store's readers and never imports capture
or the server.

Owns `cps verify repo` too: every file of a backup repository checked (cheaply, or every byte),
each chain's continuity and each recovery point's restorability judged by the repository's own
catalog, each problem a `RepoFinding` naming the file, the database, the chain and the
transactions it makes unrestorable.

Owns `cps drill` too (drill.py): points restored as `cps restore` restores them (the only use of
restore here), each restored file checked by `cps verify store`, the result recorded in the
repository.
"""

from .drill import DrillOptions, DrillReport, drill
from .findings import KINDS, Finding, Place
from .repo_check import RepoReport, check_repository
from .repo_findings import REPO_KINDS, Lost, RepoFinding
from .store_check import RepairReport, StoreReport, check_store, repair_store

__all__ = [
    "DrillOptions",
    "DrillReport",
    "KINDS",
    "REPO_KINDS",
    "Finding",
    "Lost",
    "Place",
    "RepairReport",
    "RepoFinding",
    "RepoReport",
    "StoreReport",
    "check_repository",
    "check_store",
    "drill",
    "repair_store",
]
