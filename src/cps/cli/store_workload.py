"""`cps store workload`: replay realistic mailbox activity against a mail database."""

from __future__ import annotations

from pathlib import Path

import click

from ..store.workload import WorkloadSummary, run_workload
from . import output
from .output import counted, emit, note
from .signals import stop_on_signals
from .targets import database_argument


@click.command("workload")
@database_argument()
@click.option(
    "--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Deliver the messages in this folder (one file each, byte for byte, in a shuffled order) "
    "instead of generated mail.  [default: generated mail]",
)
@click.option("--ops", type=click.IntRange(min=0), help="Stop after this many operations.")
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
    help="Stop after this many seconds.",
)
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), metavar="OPS_PER_S",
    help="Pace operations at this many a second on average.  [default: as fast as possible]",
)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of every choice: the same seed on the same database does the same.")
@click.option(
    "--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Write every committed operation as a JSON line to this new file.  [default: none]",
)
@click.option("--mailboxes", type=click.IntRange(min=1), default=5, show_default=True,
              help="Act on user001@example.com ... userN@example.com, creating those missing.")
@output.json_option
def workload_command(
    db: Path, corpus: Path | None, ops: int | None, duration: float | None, rate: float | None,
    seed: int, log_path: Path | None, mailboxes: int, as_json: bool,
) -> None:
    """Replay realistic mailbox activity against the mail database DB: deliveries, reads, flag
    changes, moves, deletes, expunges and folder changes, each one transaction, in a fixed mix
    (docs/workload.md). The run stops at --ops or --duration, whichever comes first, or on
    Ctrl-C or SIGTERM (after the operation in progress); with neither it runs until stopped. A
    summary is printed at the end.

    Examples:

    \b
      cps store workload mail.db --ops 1000 --seed 7 --log ops.jsonl
      cps store workload mail.db --duration 600 --rate 50 --corpus ~/maildir
    """
    if ops is None and duration is None:
        note("running until interrupted (Ctrl-C stops after the current operation)")
    with stop_on_signals() as stop:
        summary = run_workload(
            db, corpus=corpus, ops=ops, duration=duration, rate=rate, seed=seed, log=log_path,
            mailboxes=mailboxes, stop=stop,
        )
    emit(summary.to_json(), as_json, lambda _: _render(summary))


def _render(summary: WorkloadSummary) -> str:
    kinds = "  ".join(f"{kind} {count}" for kind, count in summary.ops.items() if count)
    megabytes = summary.bytes_delivered / 1e6
    return "\n".join([
        f"{counted(summary.total_ops, 'operation')} in {summary.elapsed:.1f} s "
        f"({summary.ops_per_second:.1f}/s), stopped by {summary.stopped}",
        f"  {kinds}" if kinds else "  none",
        f"messages delivered: {summary.messages_delivered} "
        f"({counted(summary.deliveries, 'copy', 'copies')}, {megabytes:.1f} MB)",
        f"mailboxes created: {summary.mailboxes_created}",
        f"errors: {summary.errors}",
    ])
