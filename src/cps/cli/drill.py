"""`cps drill`: restore a repository's databases at chosen points and verify each result."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Location, parse_duration
from ..errors import TargetDamaged
from ..verify import DrillOptions, DrillReport, drill
from ..verify.drill import RANDOM_POINTS
from . import output
from .output import counted, emit
from .progress import progress_reporter
from .repo_options import (
    db_option,
    open_repository,
    passphrase_file_option,
    pick_database,
    repository_argument,
)


@click.command("drill")
@repository_argument()
@db_option()
@click.option("--points", "random_points", type=click.IntRange(min=0), default=RANDOM_POINTS,
              show_default=True, help="Transactions drawn at random from everything restorable.")
@click.option("--window", default="7d", show_default=True,
              help="Every recovery point made this far back is restored too.")
@click.option("--seed", type=click.IntRange(min=0),
              help="The seed of the random draw: the same seed on the same repository draws the "
                   "same transactions. Without it a new one is drawn, and printed.")
@click.option("--work-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Where the restored databases are written, one at a time, and deleted once "
                   "checked (a temporary folder of the system without it).")
@click.option("--no-record", is_flag=True,
              help="Do not record the drill in the repository (one that cannot be written, such "
                   "as a read-only mount of an off-site copy).")
@passphrase_file_option
@output.json_option
def drill_command(repo_path: Location, db_id: str | None, random_points: int, window: str,
                  seed: int | None, work_dir: Path | None, no_record: bool,
                  passphrase_file: Path | None, as_json: bool) -> None:
    """Prove that backups restore: restore random transactions, every recovery point of the
    window and the latest state, each into a temporary file, check each with cps verify store,
    and record the result in the repository (cps timeline shows the last drill). Exit status 0:
    every point restored and verified; 32 (damaged): a point failed, each named with why and
    what to do. Every database is drilled unless --db names one.

    Examples:

    \b
      cps drill /backup/cps
      cps drill /backup/cps --db mail01 --points 10 --window 30d
      cps drill s3://backups/cps --seed 7 --work-dir /var/tmp --json
      cps drill /mnt/offsite/cps --no-record
    """
    repo = open_repository(repo_path, passphrase_file)
    options = DrillOptions(random_points, parse_duration(window), seed, record=not no_record)
    names = [pick_database(repo, db_id)] if db_id else [d.db_id for d in repo.databases()]
    with progress_reporter(enabled=not as_json) as progress:
        reports = [drill(repo, name, options, work_dir=work_dir, progress=progress)
                   for name in names]
    data = [r.to_json() for r in reports]
    emit(data[0] if len(data) == 1 else data, as_json,
         lambda _data: "\n\n".join(_render(r) for r in reports))
    failed = [r for r in reports if not r.passed]
    if failed:
        points = sum(len(r.record.failed) for r in failed)
        raise TargetDamaged(f"the drill failed: {counted(points, 'point')} did not restore and "
                            f"verify ({', '.join(r.db_id for r in failed)})",
                            hint=failed[0].todo)


def _render(report: DrillReport) -> str:
    record = report.record
    verdict = "passed" if record.passed else f"FAILED ({len(record.failed)} failed)"
    lines = [f"database {report.db_id}: drill {verdict}, "
             f"{counted(len(record.points), 'point')} restored and verified (seed {record.seed})"]
    for point in record.points:
        restored = "" if point.txn is None else f" -> transaction {point.txn}"
        mark = "ok  " if point.problem is None else "FAIL"
        lines.append(f"  {mark} {point.target} ({point.chosen}){restored}")
        if point.problem is not None:
            lines.append(f"       {point.problem}")
    if report.todo:
        lines.append(f"  {report.todo}")
    lines.append(f"  recorded in {report.record_path}" if report.record_path else
                 "  not recorded (--no-record)")
    return "\n".join(lines)
