"""`cps verify repo`: whether a backup repository restores what it should, and if not, what is
lost, where, and what to do.

Two depths. The fast check reads what is cheap: every small file whole (chains, recovery points,
status, prune records, drill records, database descriptions), every full backup whole (the list of its pages),
each segment's ends and header (a truncated or cut file fails it), and each pack's index, and
checks that every page a full backup lists is in a pack. `read_all` reads every byte: every file
whole against its checksum, every pack against its name and every page in it against its content
address, every segment decoded and compared with its name.

What the damage costs comes from the catalog (repository/catalog.py), built twice: from the files
as listed, and as if the damaged files were not there. The holes of the second are what can no
longer be restored, so each finding names its transactions and times the way a restore would
refuse them. Nothing is written: the reader lock is held, as a restore holds it, so that prune
does not delete packs under the check.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Location
from ..errors import CorruptFile, MissingFile, UnsupportedFormat
from ..repository import FullRef, PageIndex, Repository, SegmentRef, codec, naming
from ..repository.catalog import MISSING, Catalog, Hole, Listing, catalog_of, list_files
from ..repository.crypto import MasterKey
from ..repository.format import HEADER, RECORD_LENGTH, check_frame, parse_file
from ..repository.packs import PackCheck, PackFile, check_pack, read_ahead
from .repo_findings import COPY_BACK, NEW_CHAIN, Lost, RepoFinding

Unreadable = (CorruptFile, MissingFile, UnsupportedFormat)
HEAD_READ = 4096  # bytes read from a segment's start: its header and its header record
IN_PROCESSES_BYTES = 256 << 20  # packs worth starting processes for: docs/benchmarks.md


@dataclass
class RepoReport:
    location: str
    read_all: bool
    databases: tuple[str, ...]
    checked: dict[str, int] = field(default_factory=dict)  # files checked, by kind
    findings: list[RepoFinding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def count(self, kind: str, number: int = 1) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + number

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.location, "read_all": self.read_all, "clean": self.clean,
                "databases": list(self.databases), "checked": self.checked,
                "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True, slots=True)
class Pages:
    """Where pages are, and which cannot be used: in a damaged pack, or not matching their id."""

    index: PageIndex
    damaged: dict[str, str]  # pack key: why it cannot be used
    bad_ids: frozenset[bytes]

    def unusable(self, page_ids: bytes) -> int:
        """How many of these ids (32 bytes each) a restore could not read."""
        ids = np.frombuffer(page_ids, "S32")
        rows = self.index.locate(ids)
        bad = rows < 0
        if self.damaged and not bad.all():
            in_damaged = np.array([p.key in self.damaged for p in self.index.packs])
            bad[~bad] = in_damaged[self.index.pack_numbers[rows[~bad]]]
        if self.bad_ids:
            bad |= np.isin(ids, np.array(sorted(self.bad_ids), "S32"))
        return int(np.count_nonzero(bad))


def check_repository(repo: Repository, db_id: str | None = None, *,
                     read_all: bool = False) -> RepoReport:
    """Every check of the repository (of one database's files, and every pack, with `db_id`)."""
    with repo.reader_lock():
        names = [db_id] if db_id is not None else [
            entry.name for entry in repo.storage.list(naming.DATABASES) if entry.folder]
        report = RepoReport(repo.describe(), read_all, tuple(names))
        # The packs are checked while the segments are: neither needs the other.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cps-packs") as packs:
            pages = packs.submit(_check_packs, repo, report, read_all=read_all)
            for name in names:
                _check_database(repo, name, pages, report, read_all=read_all)
            pages.result()  # with no database to wait for it: its findings, or its error
    return report


def _check_packs(repo: Repository, report: RepoReport, *, read_all: bool) -> Pages:
    index = repo.page_index()
    damaged = dict(index.damaged)
    bad_ids: set[bytes] = set()
    if read_all:
        readable = [p for p in index.packs if p.key not in damaged]
        for pack, check in zip(readable, _check_whole(repo, readable), strict=True):
            bad_ids.update(check.bad_ids)
            if check.problem is not None:
                damaged[pack.key] = check.problem
    report.count("pack", len(index.packs))
    for key, why in damaged.items():
        report.findings.append(RepoFinding(
            "pack-damaged", repo.storage.describe(key), why,
            "Each full backup that needs its pages is reported as pages-missing, with what it "
            "costs; restores from other full backups still work. " + COPY_BACK))
    return Pages(index, damaged, frozenset(bad_ids))


def _check_whole(repo: Repository, packs: list[PackFile]) -> Iterator[PackCheck]:
    """`check_pack` of each pack, in order. Hashing and decompressing a page at a time keeps
    the interpreter lock busy between the calls that release it, so threads share one core: past
    IN_PROCESSES_BYTES the packs are checked by a process per core, each with the repository
    opened anew (the key passed to it, as to the server's job processes)."""
    workers = min(os.cpu_count() or 1, len(packs))
    if workers < 2 or sum(p.size for p in packs) < IN_PROCESSES_BYTES:
        yield from read_ahead(lambda pack: check_pack(repo.storage, pack, repo.sealing_for,
                                                      repo.page_id), packs, "cps-pack-check")
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_open_in_child, initargs=(repo.location, repo.key)
                             ) as pool:
        yield from pool.map(_check_in_child, packs, chunksize=2)


_child_repository: Repository | None = None  # in a pack-checking process: its repository


def _open_in_child(location: Location, key: MasterKey | None) -> None:
    global _child_repository
    _child_repository = Repository.with_key(location, key)


def _check_in_child(pack: PackFile) -> PackCheck:
    repo = _child_repository
    assert repo is not None
    return check_pack(repo.storage, pack, repo.sealing_for, repo.page_id)


def _check_database(repo: Repository, db_id: str, checking: Future[Pages], report: RepoReport,
                    *, read_all: bool) -> None:
    findings: list[RepoFinding] = []
    findings += _check_small_file(repo, f"{naming.database_dir(db_id)}/database", "database",
                                  db_id, report)
    listing = list_files(repo, db_id)
    findings += _advisory(repo, listing)
    findings += _drills(repo, db_id, report)
    damaged: dict[FullRef | SegmentRef, RepoFinding] = {}
    in_segments = {folder.number: _check_segments(repo, db_id, folder.number, segments, report,
                                                  read_all=read_all)
                   for folder, _fulls, segments in listing.chains}
    pages = checking.result()
    for folder, fulls, _segments in listing.chains:
        report.count("chain")
        for full in fulls:
            damaged.update(_check_full(repo, db_id, full, pages, report))
        damaged.update(in_segments[folder.number])
    usable = catalog_of(listing, frozenset(damaged))
    costed = [_with_cost(finding, ref, usable) for ref, finding in damaged.items()]
    findings += costed
    findings += _holes(repo, db_id, usable, costed)
    findings += _points(repo, db_id, listing, usable)
    report.findings += findings


def _check_small_file(repo: Repository, key: str, kind: str, db_id: str,
                      report: RepoReport) -> list[RepoFinding]:
    """A small file read whole: its checksum, framing and records."""
    report.count(kind)
    try:
        checked = parse_file(repo.storage.describe(key), repo.storage.get(key), kind)
        list(checked.records(repo.sealing_for(checked.flags)))
    except MissingFile:
        return []  # a description is optional once chains exist (repository.database)
    except (CorruptFile, UnsupportedFormat) as exc:
        return [RepoFinding(f"{kind}-file-damaged", repo.storage.describe(key), exc.message,
                            "Nothing restorable depends on it (it describes the database for "
                            "people). " + COPY_BACK, db_id)]
    return []


def _advisory(repo: Repository, listing: Listing) -> Iterator[RepoFinding]:
    """The files a restore reads but can do without, and the chain files it rebuilds."""
    db_id = listing.db_id
    if listing.status_problem is not None:
        yield RepoFinding("status-damaged", repo.storage.describe(
            f"{naming.database_dir(db_id)}/status"), listing.status_problem,
            "Times after the last captured transaction are not restorable until the protector "
            "writes its status again (a running cps protect does so every second).", db_id)
    for file in listing.unreadable_pruned:
        yield RepoFinding("prune-record-damaged", file.path, file.error,
                          "What prune removed shows as missing instead of pruned; nothing "
                          "restorable is lost. The next cps prune writes a new record.", db_id)
    for file in listing.unreadable_points:
        yield RepoFinding("point-damaged", file.path, file.error,
                          f"The point's name is lost, its transaction is not: restore it with "
                          f"--txn {file.txn}. " + COPY_BACK, db_id)
    for folder, _fulls, _segments in listing.chains:
        if folder.problem is not None:
            yield RepoFinding(
                "chain-file-damaged", repo.storage.describe(naming.chain_dir(db_id, folder.number)),
                f"chain {folder.number}: {folder.problem}",
                "Its backups stay restorable (its record is rebuilt from its files), but its "
                "start time and the reason it started are lost. " + COPY_BACK, db_id,
                folder.number)


def _drills(repo: Repository, db_id: str, report: RepoReport) -> Iterator[RepoFinding]:
    """The drill records, each read whole: advisory, like the prune records."""
    records, unreadable = repo.drills(db_id)
    report.count("drill", len(records) + len(unreadable))
    for file in unreadable:
        yield RepoFinding("drill-record-damaged", file.path, file.error,
                          "Only the record of one restore drill is lost, nothing restorable; "
                          "the timeline shows the drills before and after it. " + COPY_BACK,
                          db_id)


def _check_full(repo: Repository, db_id: str, ref: FullRef, pages: Pages,
                report: RepoReport) -> dict[FullRef | SegmentRef, RepoFinding]:
    report.count("full")
    path = repo.storage.describe(repo.full_key(db_id, ref))
    try:
        full = repo.read_full(db_id, ref)
    except Unreadable as exc:
        return {ref: RepoFinding("full-damaged", path, exc.message, COPY_BACK, db_id, ref.chain)}
    unusable = pages.unusable(full.page_ids)
    if not unusable:
        return {}
    why = ("in a damaged pack" if pages.damaged or pages.bad_ids else "in no pack: a pack is "
           "missing")
    return {ref: RepoFinding("pages-missing", path,
                             f"{unusable} of the {full.pages} pages of the full backup at "
                             f"transaction {ref.txn} are {why}",
                             "Copy the missing or damaged packs back from a copy of the "
                             "repository, if there is one.", db_id, ref.chain)}


def _check_segments(repo: Repository, db_id: str, chain: int, refs: Iterable[SegmentRef],
                    report: RepoReport, *, read_all: bool) -> dict[FullRef | SegmentRef, RepoFinding]:
    refs = list(refs)
    report.count("segment", len(refs))
    folder = f"{naming.chain_dir(db_id, chain)}/segments"
    sizes = {entry.name: entry.size for entry in repo.storage.list(folder)}

    def check(ref: SegmentRef) -> str | None:
        try:
            if read_all:
                _read_segment(repo, db_id, ref)
            else:
                _segment_ends(repo, repo.segment_key(db_id, ref),
                              sizes.get(naming.format_segment(ref), 0), ref)
        except Unreadable as exc:
            return exc.message
        return None

    problems = read_ahead(check, refs, "cps-segment-check")
    return {ref: RepoFinding("segment-damaged", repo.storage.describe(repo.segment_key(db_id, ref)),
                             problem, COPY_BACK, db_id, chain)
            for ref, problem in zip(refs, problems, strict=True) if problem is not None}


def _read_segment(repo: Repository, db_id: str, ref: SegmentRef) -> None:
    """Every byte of a segment: checksum, every transaction decoded, and its name agreeing."""
    segment = repo.read_segment(db_id, ref)
    numbers = [t.txn for t in segment.transactions]
    if numbers != list(range(ref.first_txn, ref.last_txn + 1)):
        where = repo.storage.describe(repo.segment_key(db_id, ref))
        raise CorruptFile(f"{where} does not hold consecutive transactions", path=where)


def _segment_ends(repo: Repository, key: str, size: int, ref: SegmentRef) -> None:
    """A segment's ends and its header record: chain and number of transactions as named."""
    where = repo.storage.describe(key)
    head = repo.storage.get_range(key, 0, HEAD_READ)

    def read(offset: int, length: int) -> bytes:
        if offset + length <= len(head):
            return head[offset : offset + length]
        return repo.storage.get_range(key, offset, length)

    check_frame(where, size, read, "segment")  # the file is at least header and footer long
    flags = int.from_bytes(read(10, 2), "little")
    (length,) = RECORD_LENGTH.unpack(read(HEADER.size, RECORD_LENGTH.size))
    record = repo.sealing_for(flags).open(read(HEADER.size + RECORD_LENGTH.size, length))
    if len(record) < codec.SEGMENT_HEADER.size:
        raise CorruptFile(f"{where} has a truncated header record", path=where)
    chain, _page_size, count = codec.SEGMENT_HEADER.unpack_from(record)
    if (chain, count) != (ref.chain, ref.last_txn - ref.first_txn + 1):
        raise CorruptFile(f"{where} holds {count} transactions of chain {chain}, which its name "
                          "does not say: the file is damaged or misplaced", path=where)


def _with_cost(finding: RepoFinding, ref: FullRef | SegmentRef, usable: Catalog) -> RepoFinding:
    """The finding of a damaged file, with the transactions its loss makes unrestorable."""
    txn = ref.txn if isinstance(ref, FullRef) else ref.first_txn
    chain = next((c for c in usable.chains if c.chain.chain == ref.chain), None)
    hole = chain.hole_of(txn) if chain is not None else None
    if hole is None:
        return RepoFinding(finding.kind, finding.path, finding.detail,
                           "No transaction is lost: restores use another full backup of the "
                           "chain, with more log. " + finding.todo, finding.db_id, finding.chain)
    return RepoFinding(finding.kind, finding.path, finding.detail,
                       _lost_todo(hole, usable) + " " + finding.todo, finding.db_id, finding.chain,
                       Lost.of(hole))


def _lost_todo(hole: Hole, usable: Catalog) -> str:
    chain = next(c for c in usable.chains if c.chain.chain == hole.chain)
    before = (f"restores of chain {hole.chain} up to transaction {hole.first_txn - 1} still work"
              if chain.span_of(hole.first_txn - 1) else
              f"no earlier transaction of chain {hole.chain} is restorable either")
    newest = usable.newest is not None and usable.newest.chain.chain == hole.chain
    return (f"Transactions {hole.first_txn} to {hole.last_txn} of chain {hole.chain} cannot be "
            f"restored; {before}. " + (NEW_CHAIN if newest else "Later chains are not affected."))


def _holes(repo: Repository, db_id: str, usable: Catalog, costed: list[RepoFinding]
           ) -> Iterator[RepoFinding]:
    """Holes no damaged file explains: their files are gone."""
    explained = {(f.lost.chain, f.lost.first_txn) for f in costed if f.lost is not None}
    for chain in usable.chains:
        for hole in chain.holes:
            if hole.kind != MISSING or (hole.chain, hole.first_txn) in explained:
                continue
            yield RepoFinding("log-missing", repo.storage.describe(
                naming.chain_dir(db_id, hole.chain)), hole.describe(), _lost_todo(hole, usable), db_id,
                hole.chain, Lost.of(hole))


def _points(repo: Repository, db_id: str, listing: Listing, usable: Catalog
            ) -> Iterator[RepoFinding]:
    """Every recovery point restorable, with the files found damaged set aside."""
    for point in listing.points:
        chain = usable.chain_of(point.txn)
        if chain is None or chain.span_of(point.txn) is not None:
            continue
        hole = chain.hole_of(point.txn)
        yield RepoFinding(
            "point-unrestorable", repo.storage.describe(repo.point_key(db_id, point)),
            f"recovery point {point.name!r} (transaction {point.txn}) cannot be restored"
            + (f": {hole.describe()}" if hole else ""),
            "Restore an earlier point, or the latest state before it with cps restore "
            "--best-effort.", db_id, point.chain, Lost.of(hole) if hole else None)
