"""A job's work in a process of its own: restores and restore drills, whose CPU would otherwise be
taken from the API's event loop (one interpreter lock for both), so that the API answers at its
usual speed while a large database is restored, and a job that dies cannot take the server with it.

The child is started with `spawn` (a new interpreter: nothing of the server's threads or sockets is
inherited) and talks back over a pipe: progress reports, then its result or its error. The parent
relays the progress to the job, and looks at least every CANCEL_CHECK seconds whether the job was
cancelled; then, or when anything else goes wrong, the child is killed (and the job's folder, with
whatever the child left in it, removed by the job runner).
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..config import Location
from ..errors import ERRORS_BY_CODE, CPSError
from ..ops import restore_database
from ..repository import Repository
from ..restore import Target
from ..verify import DrillOptions, drill
from .jobs import Progress

CANCEL_CHECK = 0.5  # seconds between two looks at the job's cancel flag while the child is silent

ChildWork = Callable[..., dict[str, Any]]  # (*args, progress=...) -> a JSON-able result


def run_in_process(work: ChildWork, args: tuple[Any, ...], progress: Progress) -> dict[str, Any]:
    """`work(*args, progress=...)` in a child process (a module-level function, its arguments
    picklable); its result, or its CPSError raised here."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, work, args), daemon=True)
    child.start()
    sender.close()
    try:
        return _follow(child, receiver, progress)
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()


def _follow(child: multiprocessing.process.BaseProcess, receiver: Connection,
            progress: Progress) -> dict[str, Any]:
    last = ("starting", 0, 0)
    while True:
        if not receiver.poll(CANCEL_CHECK):
            progress(*last)  # raises Cancelled once the job is cancelled
            continue
        try:
            kind, value = receiver.recv()
        except EOFError:
            child.join()
            raise CPSError(f"the job's process ended without an answer (exit status "
                           f"{child.exitcode})", hint="The server's log may say why.") from None
        if kind == "progress":
            last = value
            progress(*value)
        elif kind == "done":
            result: dict[str, Any] = value
            return result
        else:
            code, message, hint = value
            raise ERRORS_BY_CODE.get(code, CPSError)(message, hint=hint)


def _child(sender: Connection, work: ChildWork, args: tuple[Any, ...]) -> None:
    def report(stage: str, done: int, total: int) -> None:
        sender.send(("progress", (stage, done, total)))

    try:
        sender.send(("done", work(*args, progress=report)))
    except CPSError as error:
        sender.send(("error", (error.code, error.message, error.hint)))
    except Exception as error:  # a bug: said to the parent, which fails the job with it
        sender.send(("error", ("error", f"the job failed: {error!r}", None)))
    finally:
        sender.close()


def restore_file(repository: Location, passphrase: str | None, db_id: str, target: Target,
                 output: Path, best_effort: bool, *, progress: Progress) -> dict[str, Any]:
    """Restore `db_id` to `output` (in the child); what the job's result says of it, with the
    file's SHA-256 for the download to be checked against."""
    repo = Repository.open(repository, passphrase=passphrase)
    done = restore_database(repo, db_id, target, output, best_effort=best_effort,
                            progress=progress)
    with done.result.output.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return {**done.to_json(), "sha256": digest, "size": done.result.output.stat().st_size}


def drill_database(repository: Location, passphrase: str | None, db_id: str,
                   options: DrillOptions, work_dir: Path, *, progress: Progress) -> dict[str, Any]:
    """A restore drill of `db_id` (in the child), its restores written in `work_dir`; its
    report, passed or failed (the record in the repository says the same)."""
    repo = Repository.open(repository, passphrase=passphrase)
    return drill(repo, db_id, options, work_dir=work_dir, progress=progress).to_json()
