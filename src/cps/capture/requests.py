"""Recovery points asked for while a protector runs, through files beside the repository's locks.

`cps recovery-point create` writes `databases/<db>/requests/<id>.request` (JSON: the point's name)
and waits for `<id>.done` (JSON: the point). The running protector answers at its next cycle: it
captures everything committed up to that moment, makes it durable, writes the point and the answer.
Files, rather than a socket, so the request works wherever the repository's folder is reachable and
leaves a trace when nobody answers. The folder is the repository's own, or for a repository in a
bucket a local folder (Repository.requests_folder): a bucket is not polled every cycle.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from ..durable import atomic_write, make_folders
from ..errors import CaptureError
from ..repository import RecoveryPoint, Repository


def answer_requests(repo: Repository, db_id: str, create: Callable[[str, bool], RecoveryPoint],
                    start_full: Callable[[], int | None]) -> None:
    """Answer each request waiting: a recovery point (`{"name", "keep"}`), or a full backup to
    start now (`{"full": true}`, answered with the transaction it is of, or null when one is
    being made already)."""
    folder = repo.requests_folder(db_id)
    if not folder.is_dir():
        return
    for request in sorted(folder.glob("*.request")):
        done = request.with_suffix(".done")
        if done.exists():
            continue
        asked = json.loads(request.read_text())
        if asked.get("full"):
            answer: dict[str, object] = {"full": start_full()}
        else:
            point = create(asked["name"], bool(asked.get("keep", False)))
            answer = {"name": point.name, "txn": point.txn, "chain": point.chain,
                      "created_at": point.created_at}
        atomic_write(done, json.dumps(answer).encode())
        request.unlink()


def ask_protector(repo: Repository, db_id: str, name: str, timeout: float, *,
                  keep: bool = False) -> dict[str, object]:
    """Ask the running protector for a recovery point and wait for its answer."""
    return _ask(repo, db_id, {"name": name, "keep": keep}, timeout)


def ask_for_full(repo: Repository, db_id: str, timeout: float) -> int | None:
    """Ask the running protector to start a full backup now; the transaction it is of (None
    when one is being made already)."""
    answer = _ask(repo, db_id, {"full": True}, timeout)["full"]
    return int(str(answer)) if answer is not None else None


def _ask(repo: Repository, db_id: str, asked: dict[str, object], timeout: float
         ) -> dict[str, object]:
    folder = repo.requests_folder(db_id)
    make_folders(folder)
    request = folder / f"{uuid.uuid4().hex}.request"
    atomic_write(request, json.dumps(asked).encode())
    done = request.with_suffix(".done")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            answer: dict[str, object] = json.loads(done.read_text())
            done.unlink()
            return answer
        time.sleep(0.01)
    request.unlink(missing_ok=True)
    raise CaptureError(
        f"the protector of {db_id} did not answer within {timeout:.0f} s",
        hint="Check that 'cps protect' is running and healthy; nothing was done.")
