"""`cps drill`: restore a database at chosen points and verify each restored file, proving that
the backups restore, not only that their files pass their checks.

The points: `random_points` transactions drawn at random (seeded, so a drill can be repeated
exactly) from everything the catalog can restore, every recovery point made within `window`, and
the latest state. Each is planned and restored as `cps restore` does it (restore.resolve and
restore.restore, under the reader lock), into a fresh folder, then checked whole by `cps verify
store` (check_store) and compared with what the catalog promised: the transaction restored is the
one aimed at. A point fails when its restore refuses, its restored file has findings, or it is
another transaction; the drill fails when any point does, and says for each why and what to do.

The drill is recorded in the repository (`Repository.write_drill`), passed or failed, so that
the timeline and the server's metrics show when the backups were last proven to restore; a drill
of a repository that cannot be written (a read-only mount of an off-site copy) is told not to
record. Each restored file is deleted once checked, and the folder with it: a drill needs the
space of one restored database at a time.
"""

from __future__ import annotations

import random
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CPSError, FileSystemError
from ..repository import DrilledPoint, DrillRecord, Repository
from ..repository.catalog import Catalog, Span, load_catalog
from ..restore import Target, format_ms, resolve, restore
from .store_check import check_store

Progress = Callable[[str, int, int], None]
RANDOM_POINTS = 3
WINDOW_SECONDS = 7 * 86400.0
FINDINGS_SHOWN = 3  # of a restored file's findings, the first few are named in its problem
WHAT_TO_DO = ("Run 'cps verify repo {repo} --db {db} --read-all': it names each damaged or missing file "
        "and what it costs; restore from a copy of the repository meanwhile, if there is one.")


@dataclass(frozen=True, slots=True)
class DrillOptions:
    random_points: int = RANDOM_POINTS
    window: float = WINDOW_SECONDS  # seconds back from now: every recovery point made since
    seed: int | None = None  # None: a new one, recorded, so the drill can be repeated
    record: bool = True  # write the drill's record into the repository


@dataclass(frozen=True, slots=True)
class Aim:
    """A point to restore: the target, why it was chosen, and the transaction it must give
    (None for the latest state, whose transaction the plan gives)."""

    target: Target
    chosen: str
    txn: int | None


@dataclass(frozen=True, slots=True)
class DrillReport:
    db_id: str
    repository: str
    record: DrillRecord
    record_path: str | None  # where the record was written (Storage.describe), if it was

    @property
    def passed(self) -> bool:
        return self.record.passed

    @property
    def todo(self) -> str | None:
        """What to do about a failed drill."""
        return None if self.passed else WHAT_TO_DO.format(repo=self.repository, db=self.db_id)

    def to_json(self) -> dict[str, Any]:
        return {"db_id": self.db_id, "repository": self.repository, **drill_json(self.record),
                "record_path": self.record_path, "todo": self.todo}


def drill_json(record: DrillRecord) -> dict[str, Any]:
    """A drill record as `cps drill --json` and the API show it."""
    return {"drill_id": record.drill_id, "passed": record.passed, "seed": record.seed,
            "started_at": format_ms(record.started_at), "ended_at": format_ms(record.ended_at),
            "points": [{"target": p.target, "chosen": p.chosen, "txn": p.txn,
                        "passed": p.problem is None, "problem": p.problem}
                       for p in record.points]}


def drill(repo: Repository, db_id: str, options: DrillOptions = DrillOptions(), *,
          work_dir: Path | None = None, progress: Progress | None = None) -> DrillReport:
    """Drill `db_id` of `repo` (see the module docstring) and record the result there."""
    started = time.time()
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    aims = choose(load_catalog(repo, db_id), options.random_points,
                  int((started - options.window) * 1000), seed)
    report = progress or _quiet
    folder = Path(tempfile.mkdtemp(prefix="cps-drill-", dir=work_dir))
    try:
        points = []
        for done, aim in enumerate(aims):
            report("points", done, len(aims))
            points.append(_drill_point(repo, db_id, aim, folder / f"{done}.db", report))
        report("points", len(aims), len(aims))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record = DrillRecord(uuid.uuid4().hex[:16], int(started * 1000), int(time.time() * 1000),
                         seed, all(p.problem is None for p in points), tuple(points))
    return DrillReport(db_id, repo.describe(), record,
                       _recorded(repo, db_id, record) if options.record else None)


def _recorded(repo: Repository, db_id: str, record: DrillRecord) -> str:
    """Write `record` into `repo`; where it went. A repository that cannot be written fails
    the drill's command with the verdict said, and how to drill without a record."""
    try:
        return repo.storage.describe(repo.write_drill(db_id, record))
    except OSError as exc:
        verdict = "passed" if record.passed else f"failed ({len(record.failed)} points)"
        failed = FileSystemError.from_os_error(exc, kept=(
            f"The drill {verdict}; drill a repository that cannot be written with cps drill "
            "--no-record."))
        raise FileSystemError(f"the drill of {db_id} {verdict}, but cannot be recorded: "
                              f"{failed.message}", hint=failed.hint) from exc


def choose(catalog: Catalog, random_points: int, window_start: int, seed: int) -> list[Aim]:
    """The points of a drill, by transaction: `random_points` distinct transactions drawn from
    every span with `seed`, each recovery point made at or after `window_start` (ms), and the
    latest state."""
    spans = catalog.spans
    total = sum(s.last_txn - s.first_txn + 1 for s in spans)
    drawn = sorted(random.Random(seed).sample(range(total), min(random_points, total)))
    aims = [Aim(Target("txn", txn), "random", txn) for txn in _txns_at(spans, drawn)]
    names = [p.name for p in catalog.points]
    for point in catalog.points:
        if point.created_at >= window_start:
            # A name given twice restores by neither (plan.py refuses it): by its transaction.
            target = (Target("point", point.name) if names.count(point.name) == 1
                      else Target("txn", point.txn))
            aims.append(Aim(target, f"recovery point {point.name!r}", point.txn))
    aims.sort(key=lambda aim: aim.txn or 0)
    return [*aims, Aim(Target("latest"), "latest", None)]


def _txns_at(spans: tuple[Span, ...], offsets: list[int]) -> Iterator[int]:
    """The transactions at `offsets` (sorted) of the spans' transactions laid end to end."""
    start = 0
    wanted = iter(offsets)
    offset = next(wanted, None)
    for span in spans:
        end = start + span.last_txn - span.first_txn + 1
        while offset is not None and offset < end:
            yield span.first_txn + offset - start
            offset = next(wanted, None)
        start = end


def _drill_point(repo: Repository, db_id: str, aim: Aim, output: Path,
                 progress: Progress) -> DrilledPoint:
    spec = aim.target.spec()
    try:
        with repo.reader_lock():
            _catalog, plan = resolve(repo, db_id, aim.target)
            result = restore(repo, plan, output, progress=progress)
    except CPSError as refused:  # its hint is for a restore; the drill's own (WHAT_TO_DO) says more
        return DrilledPoint(spec, aim.chosen, None, f"the restore refused: {refused.message}")
    try:
        expected = aim.txn if aim.txn is not None else plan.last_txn
        if result.txn != expected:
            return DrilledPoint(spec, aim.chosen, result.txn,
                                f"the restore gave transaction {result.txn}, not {expected}")
        return DrilledPoint(spec, aim.chosen, result.txn, _verified(output))
    finally:
        for leftover in (output, *(output.with_name(output.name + s) for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


def _verified(path: Path) -> str | None:
    """Why the restored file at `path` fails `cps verify store`, None when it passes."""
    try:
        found = check_store(path)
    except CPSError as exc:
        return f"the restored file is not a mail database: {exc.message}"
    if found.clean:
        return None
    named = "; ".join(f"{f.kind}: {f.detail}" for f in found.findings[:FINDINGS_SHOWN])
    more = len(found.findings) - FINDINGS_SHOWN
    return (f"cps verify store finds {len(found.findings)} problem(s) in the restored file: "
            f"{named}" + (f"; and {more} more" if more > 0 else ""))


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None
