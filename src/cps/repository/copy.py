"""Copying a repository to another storage, or bringing a copy up to date (`cps repo copy`).

Files are copied as they are stored, so a copy keeps the source's encryption: the copy needs no
passphrase and never holds plaintext. Each file is read from the source and checked whole with
the checks that need no key before it is written (`check_copied`): its container (size,
magic, version, checksum, record framing), that its encryption flag is the repository's, and for
a pack that its SHA-256 is its name. A file that fails is reported and not written; the copy goes
on with every sound file.

Incremental and resumable: a file the destination holds under the same name with the same size
is not copied again (the files are immutable, a pack's name is its content); the files that are
replaced under their name at the source (`status`, and a recovery point when `cps
recovery-point keep` rewrites it) are compared and copied when they differ. A file is never
deleted from the destination, and one that differs there is not overwritten unless it fails its
own checks (a damaged copy, then replaced and reported).

Order: the source is listed in the reverse of the order its files are written (status and
recovery points, then chains, then packs), so that a point or a full backup a protector writes
meanwhile comes with the segment or packs it refers to (files written into the chains while they
are listed may be taken in part: a hole at the copy's end, filled by the next copy). Files are
written in the repository's own write order (key and config, packs, then per database: the
database file, prune records, each chain's file, its full backups and segments in transaction
order, recovery points, status, drill records). Cut short at any instant, the destination is a
repository whose every reference is to a file already there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Location
from ..errors import (
    CorruptFile,
    CPSError,
    MissingFile,
    NotARepository,
    RepositoryError,
    UnsupportedFormat,
)
from . import codec, crypto, locks, naming
from .format import FLAG_ENCRYPTED, parse_file
from .packs import read_ahead
from .storage import Storage, coordination_folder, open_storage

Progress = Callable[[str, int, int], None]
REPLACED_UNDER_THEIR_NAME = frozenset({"status", "point"})
COPIERS = 4  # packs copied at once: they refer to nothing, so their order does not matter
PLAIN_KINDS = frozenset({"config", "key"})  # never encrypted: read before any key is known
WRITTEN = frozenset({"copied", "updated", "repaired"})


@dataclass(frozen=True, slots=True)
class SourceFile:
    key: str
    kind: str
    size: int


@dataclass
class CopyReport:
    """What a copy did, counted in files; `copied` includes `updated` and `repaired`."""

    source: str
    destination: str
    files: int = 0  # repository files listed at the source
    copied: int = 0
    copied_bytes: int = 0
    unchanged: int = 0  # at the destination already
    updated: int = 0  # replaced at the source under their name since the last copy
    vanished: int = 0  # deleted at the source (by prune) between the listing and the copy
    damaged: list[str] = field(default_factory=list)  # source files that fail their checks
    repaired: list[str] = field(default_factory=list)  # damaged destination files replaced
    conflicts: list[str] = field(default_factory=list)  # sound but different: kept as they are

    def failure(self) -> CPSError | None:
        """What went wrong, as the error to report after the result (every sound file was
        copied all the same); None when nothing did."""
        if self.damaged:
            return CorruptFile(
                f"{_files(self.damaged)} of {self.source} failed "
                f"{'its' if len(self.damaged) == 1 else 'their'} checks and "
                f"{'was' if len(self.damaged) == 1 else 'were'} not copied; the first: "
                f"{self.damaged[0]}",
                hint="Every sound file was copied, and the copy holds no damaged file. Repair the "
                     "source (an earlier copy of the file, or a new full backup), then run the "
                     "copy again: it copies only what is missing.")
        if self.conflicts:
            return RepositoryError(
                f"{_files(self.conflicts)} of {self.destination} differ from the source's files "
                f"of the same name and were kept as they are; the first: {self.conflicts[0]}",
                hint="Both files pass their checks, so they were written by two repositories of "
                     "the same id. Look at both before deleting either: nothing was overwritten.")
        return None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination, "files": self.files,
                "copied": self.copied, "copied_bytes": self.copied_bytes,
                "unchanged": self.unchanged, "updated": self.updated, "vanished": self.vanished,
                "damaged": self.damaged, "repaired": self.repaired, "conflicts": self.conflicts}


def _files(names: list[str]) -> str:
    return "1 file" if len(names) == 1 else f"{len(names)} files"


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What became of one file: `what` is copied, updated, repaired (all three written),
    unchanged, vanished, damaged or conflict; `data` the bytes to write, until written."""

    file: SourceFile
    what: str
    data: bytes = b""
    message: str = ""


def copy_repository(source: Location, destination: Location, *,
                    db_ids: Sequence[str] | None = None,
                    progress: Progress | None = None) -> CopyReport:
    """Copy the repository at `source` (only the databases `db_ids`, with every pack, when given)
    to `destination`, new, empty, or a copy of the same repository; see the module docstring."""
    src, dst = open_storage(source), open_storage(destination)
    config = _config(src)
    report = CopyReport(src.describe(), dst.describe())
    with locks.hold(_lock(source), exclusive=False, wait=True):  # prune deletes no pack meanwhile
        files = _list_source(src, db_ids)
        present = _destination_files(dst, files, config["repository_id"])
        # A prune of the destination must not delete a pack copied before the full backup using it.
        with locks.hold(_lock(destination), exclusive=False, wait=True):
            _copy(src, dst, files, present, bool(config.get("encrypted")), report,
                  progress or (lambda _stage, _done, _total: None))
    return report


def check_copied(where: str, key: str, kind: str, data: bytes, encrypted: bool) -> None:
    """The checks a file passes before it is copied, all possible without the key: its container
    whole, its encryption flag, and a pack's name; CorruptFile or UnsupportedFormat otherwise."""
    checked = parse_file(where, data, kind)
    if kind not in PLAIN_KINDS and bool(checked.flags & FLAG_ENCRYPTED) != encrypted:
        state = "encrypted" if encrypted else "not encrypted"
        raise CorruptFile(f"{where} has the wrong encryption flag for a repository that is "
                          f"{state}: its header is damaged, or it was not written by CPS",
                          path=where)
    if kind == "pack" and hashlib.sha256(data).digest() != naming.parse_pack(key.rsplit("/", 1)[1]):
        raise CorruptFile(f"{where} does not hash to its name: the pack is damaged", path=where)


def _config(storage: Storage) -> dict[str, Any]:
    try:
        data = storage.get("config")
    except MissingFile:
        raise NotARepository(f"no CPS repository at {storage.describe()}",
                             hint="Give the folder or s3://bucket/prefix of a repository made "
                                  "with 'cps repo init'.", path=storage.describe()) from None
    checked = parse_file(storage.describe("config"), data, "config")
    return codec.decode_json(checked.record(0, crypto.sealing(0, None)), "config")


def _lock(location: Location) -> Path:
    return coordination_folder(location) / "locks" / "repository"


def _list_source(storage: Storage, db_ids: Sequence[str] | None) -> list[SourceFile]:
    """The source's repository files. Each folder is listed before the folders holding what its
    files refer to (points and status before segments, full backups before packs), so a file
    written meanwhile is either missing from the listing or has what it needs there."""
    known = [e.name for e in storage.list(naming.DATABASES) if e.folder]
    for db_id in db_ids or ():
        if db_id not in known:
            raise MissingFile(f"{storage.describe()} holds no database {db_id!r}",
                              hint=f"Databases there: {', '.join(known) or 'none'}.")
    folders = [("", False)]
    for db_id in (db_ids or known):
        base = naming.database_dir(db_id)
        folders += [(base, False), (f"{base}/drills", False), (f"{base}/points", False),
                    (f"{base}/pruned", False), (f"{base}/chains", True)]
    folders.append((naming.PACKS, True))
    found = []
    for folder, recursive in folders:
        for entry in storage.list(folder, recursive=recursive):
            key = f"{folder}/{entry.name}" if folder else entry.name
            kind = None if entry.folder else naming.key_kind(key)
            if kind is not None:
                found.append(SourceFile(key, kind, entry.size))
    return found


def _destination_files(storage: Storage, files: Iterable[SourceFile], repository_id: str
                       ) -> dict[str, int]:
    """The destination's files and sizes, once it is known to be this repository's copy: one of
    the same id, or a folder or prefix holding nothing but files of the source (new, empty, or
    a first copy cut short before its config)."""
    listed = {e.name: e.size for e in storage.list("", recursive=True)
              if not e.name.startswith("locks/")}  # the copy's own lock, in a folder
    where = storage.describe()
    if "config" in listed:
        theirs = _config(storage)["repository_id"]
        if theirs != repository_id:
            raise RepositoryError(
                f"{where} is another repository (id {theirs}), not a copy of this one (id "
                f"{repository_id}): nothing was copied", path=where,
                hint="Give a new or empty folder or prefix, or an earlier copy of this "
                     "repository.")
        return listed
    sizes = {f.key: f.size for f in files}
    strangers = sorted(key for key, size in listed.items() if sizes.get(key) != size)
    if strangers:
        raise RepositoryError(
            f"{where} is not empty and is not a CPS repository ({storage.describe(strangers[0])} "
            "is not a file of the source): nothing was copied", path=where,
            hint="Give a new or empty folder or prefix, or an earlier copy of this repository.")
    return listed


def _copy(src: Storage, dst: Storage, files: list[SourceFile], present: dict[str, int],
          encrypted: bool, report: CopyReport, progress: Progress) -> None:
    report.files = len(files)
    done = 0

    def count(outcome: _Outcome) -> None:
        nonlocal done
        _tally(report, outcome)
        done += 1
        progress("copying", done, len(files))

    def prepare(file: SourceFile) -> _Outcome:
        return _prepare(src, dst, file, present.get(file.key), encrypted)

    def copy_one(file: SourceFile) -> _Outcome:
        return _write(dst, prepare(file))

    ordered = sorted(files, key=_write_order)
    packs = [f for f in ordered if f.kind == "pack"]
    for file in (f for f in ordered if f.kind in PLAIN_KINDS):
        count(copy_one(file))
    with ThreadPoolExecutor(max_workers=COPIERS, thread_name_prefix="cps-copier") as pool:
        for outcome in pool.map(copy_one, packs):
            count(outcome)
    # Read and checked ahead, written one at a time in order: a segment, a point or the status
    # written before what it follows would show the destination a hole or a reference to nothing.
    rest = [f for f in ordered if f.kind != "pack" and f.kind not in PLAIN_KINDS]
    for outcome in read_ahead(prepare, rest, "cps-copy-reader"):
        count(_write(dst, outcome))


def _write_order(file: SourceFile) -> tuple[Any, ...]:
    """The place of a file in the repository's write order (docs/repository-format.md)."""
    if file.kind in PLAIN_KINDS:
        return (0, file.kind != "key")  # the key before the config that says it is needed
    if file.kind == "pack":
        return (1, file.key)
    parts = file.key.split("/")
    db_id, step = parts[1], {"database": 0, "pruned": 1, "point": 3, "status": 4,
                             "drill": 5}.get(file.kind, 2)
    if step != 2:
        return (2, db_id, step, file.key)
    chain = naming.parse_chain_dir(parts[3]) or 0
    if file.kind == "chain":
        return (2, db_id, step, chain, -1, 0)
    if file.kind == "full":
        full = naming.parse_full(chain, parts[5])
        return (2, db_id, step, chain, full.txn if full else 0, 1)
    segment = naming.parse_segment(chain, parts[5])
    return (2, db_id, step, chain, segment.last_txn if segment else 0, 0)


def _prepare(src: Storage, dst: Storage, file: SourceFile, there: int | None,
             encrypted: bool) -> _Outcome:
    """Whether to copy one file, with its checked bytes when it is to be written (see the
    module docstring)."""
    if there == file.size and file.kind not in REPLACED_UNDER_THEIR_NAME:
        return _Outcome(file, "unchanged")
    try:
        data = src.get(file.key)
    except MissingFile:
        return _Outcome(file, "vanished")
    try:
        check_copied(src.describe(file.key), file.key, file.kind, data, encrypted)
    except (CorruptFile, UnsupportedFormat) as exc:
        return _Outcome(file, "damaged", message=exc.message)
    what = "copied" if there is None else _replacing(dst, file, data, encrypted)
    return _Outcome(file, what, data if what in WRITTEN else b"", dst.describe(file.key))


def _write(dst: Storage, outcome: _Outcome) -> _Outcome:
    """Write the file of `outcome` when it is to be written; the outcome, without the bytes."""
    if outcome.what not in WRITTEN:
        return outcome
    dst.put(outcome.file.key, outcome.data)
    return dataclasses.replace(outcome, data=b"")


def _replacing(dst: Storage, file: SourceFile, data: bytes, encrypted: bool) -> str:
    """What to do with a sound source file whose name the destination holds: nothing when it is
    the same; replace a file replaced at the source too, or a damaged copy; else keep it."""
    try:
        theirs = dst.get(file.key)
    except MissingFile:  # deleted since the listing
        return "copied"
    if theirs == data:
        return "unchanged"
    if file.kind in REPLACED_UNDER_THEIR_NAME:
        return "updated"
    try:
        check_copied(dst.describe(file.key), file.key, file.kind, theirs, encrypted)
    except (CorruptFile, UnsupportedFormat):
        return "repaired"
    return "conflict"


def _tally(report: CopyReport, outcome: _Outcome) -> None:
    if outcome.what in WRITTEN:
        report.copied += 1
        report.copied_bytes += outcome.file.size
    if outcome.what == "unchanged":
        report.unchanged += 1
    elif outcome.what == "vanished":
        report.vanished += 1
    elif outcome.what == "updated":
        report.updated += 1
    elif outcome.what == "repaired":
        report.repaired.append(outcome.message)
    elif outcome.what == "damaged":
        report.damaged.append(outcome.message)
    elif outcome.what == "conflict":
        report.conflicts.append(outcome.message)
