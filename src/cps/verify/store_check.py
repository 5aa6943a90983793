"""`cps verify store`: check a mail database, physically and logically, and repair what can be
repaired without losing mail.

A check never writes: it reads one snapshot through a read-only connection, and the full-text
index's own check, which SQLite runs as a write statement, is rolled back. A repair checks first,
refuses to write to a file with damaged pages (what is written there could be lost with them, and
only a backup holds the truth), asks the store for every fix in one transaction, and checks again:
what it reports repaired is what the second check no longer finds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..store import MailDatabase, StoreRepair
from ..store.schema import SCHEMA_VERSION
from . import logical, physical
from .findings import Finding

# Damage that makes a repair refuse to write: the file itself is not sound.
UNSOUND = ("truncated-file", "page-damaged", "unreadable")


@dataclass(frozen=True, slots=True)
class StoreReport:
    path: Path
    findings: tuple[Finding, ...]
    unchecked: tuple[str, ...]  # what could not be checked, and why

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "clean": self.clean, "unchecked": list(self.unchecked),
                "findings": [f.to_json(self.path) for f in self.findings]}


@dataclass(frozen=True, slots=True)
class RepairReport:
    before: StoreReport
    repaired: tuple[Finding, ...]
    after: StoreReport
    refused: str | None  # why nothing was written, when the file is not sound

    def to_json(self) -> dict[str, Any]:
        return {**self.after.to_json(), "refused": self.refused,
                "repaired": [f.to_json(self.after.path) for f in self.repaired]}


def check_store(path: Path, *, quick: bool = False) -> StoreReport:
    """Every check of the mail database at `path`. Raises NotAStore for a file that is not one."""
    header = physical.read_header(path)
    truncated = tuple(physical.check_length(path, header))
    if truncated:
        return StoreReport(path, truncated, ("everything else: SQLite cannot read a file shorter "
                                             "than its header says",))
    findings: list[Finding] = []
    try:
        with MailDatabase.open(path, readonly=True) as db, db.read() as connection:
            findings.extend(_checks(connection, quick=quick))
    except (sqlite3.DatabaseError, StoreError) as exc:
        # After damage SQLite may fail the end of the read too; what was found stands.
        if not findings:
            return StoreReport(path, (Finding("unreadable", f"the database cannot be read: "
                                                            f"{exc}"),), ())
    text_index, unchecked = _text_index(path, header)
    return StoreReport(path, (*findings, *text_index), unchecked)


def _checks(connection: sqlite3.Connection, *, quick: bool) -> Iterator[Finding]:
    yield from physical.check_journal_mode(connection)
    yield from physical.check_pages(connection, quick=quick)
    try:
        store = logical.StoreMap(connection)
    except sqlite3.DatabaseError as exc:
        yield Finding("unreadable", f"the mailboxes, folders, messages and bodies cannot be "
                                    f"read: {exc}")
        return
    for what, check in logical.CHECKS:
        try:
            yield from check(connection, store)
        except sqlite3.DatabaseError as exc:
            yield Finding("unreadable", f"{what} cannot be read: {exc}")


def _text_index(path: Path, header: physical.FileHeader) -> tuple[tuple[Finding, ...],
                                                                 tuple[str, ...]]:
    """FTS5's own check of the full-text index, or why it could not run."""
    if header.user_version < SCHEMA_VERSION:
        return (), (f"the full-text index's structures: opening a database of schema version "
                    f"{header.user_version} for writing would upgrade it",)
    try:
        with MailDatabase.open(path) as db:
            problem = db.text_index_problem()
    except StoreError as exc:
        return (), (f"the full-text index's structures: {exc}",)
    if problem is None:
        return (), ()
    return (Finding("text-index-damaged", f"FTS5's check of the index fails: {problem}"),), ()


def repair_store(path: Path, *, quick: bool = False) -> RepairReport:
    """Check, repair what can be repaired without losing mail, and check again."""
    before = check_store(path, quick=quick)
    unsound = [f for f in before.findings if f.kind in UNSOUND]
    if unsound:
        return RepairReport(before, (), before, refused=(
            f"{unsound[0].place} is damaged ({unsound[0].kind}): nothing was written, because "
            "what is written there could be lost with it"))
    planned = sorted((f for f in before.findings if f.repair),
                     key=lambda f: REPAIR_ORDER.index(f.kind))
    if not planned:
        return RepairReport(before, (), before, refused=None)
    _apply(path, planned)
    after = check_store(path, quick=quick)
    still = {f.key for f in after.findings}
    return RepairReport(before, tuple(f for f in planned if f.key not in still), after, None)


def _apply(path: Path, planned: list[Finding]) -> None:
    with MailDatabase.open(path) as db:
        if any(f.kind == "not-wal" for f in planned):
            db.use_wal()  # not in a transaction: SQLite changes the journal mode only outside one
        try:
            with db.repairing() as repair:
                for finding in planned:
                    FIXES[finding.kind](repair, finding)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the repair failed and was rolled back, nothing was changed: {exc}",
                             hint="Restore the database from backup with cps restore.") from exc


def _known(value: int | str | None) -> Any:
    """An id or name the finding of a repairable kind always carries."""
    assert value is not None
    return value


Fix = Callable[[StoreRepair, Finding], Any]
# Numbering first, so that a renumbered message takes a UID above every UID in use; indexes after
# the rows they index are right; the full-text index last, from the bodies as they end.
FIXES: dict[str, Fix] = {
    "not-wal": lambda _repair, _finding: None,  # done before the transaction, in _apply
    "next-uidvalidity-behind": lambda repair, _finding: repair.raise_next_uidvalidity(),
    "uid-not-below-uidnext": lambda repair, f: repair.raise_uidnext(_known(f.place.folder_id)),
    "folder-parent-missing": lambda repair, f: repair.reattach_folder(_known(f.place.folder_id)),
    "folder-cycle": lambda repair, f: repair.reattach_folder(_known(f.place.folder_id)),
    "duplicate-uid": lambda repair, f: repair.renumber(_known(f.place.message_id)),
    "index-damaged": lambda repair, f: repair.rebuild_index(_known(f.place.index)),
    "body-size-wrong": lambda repair, f: repair.resize_body(_known(f.place.body_id)),
    "text-index-missing": lambda repair, f: repair.index_text(_known(f.place.body_id)),
    "text-index-extra": lambda repair, f: repair.unindex_text(_known(f.place.body_id)),
    "text-index-damaged": lambda repair, _finding: repair.rebuild_text_index(),
}
REPAIR_ORDER = tuple(FIXES)
