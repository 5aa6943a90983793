"""Recovery points asked for while a protector runs, through files in the repository.

`cps recovery-point create` writes `databases/<db>/requests/<id>.request` (JSON: the point's name)
and waits for `<id>.done` (JSON: the point). The running protector answers at its next cycle: it
captures everything committed up to that moment, makes it durable, writes the point and the answer.
Files, rather than a socket, so the request works wherever the repository is reachable and leaves a
trace when nobody answers.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ..durable import atomic_write, make_folders
from ..errors import CaptureError
from ..repository import RecoveryPoint, Repository
from ..repository.naming import database_dir


def requests_dir(repo: Repository, db_id: str) -> Path:
    return database_dir(repo.root, db_id) / "requests"


def answer_requests(repo: Repository, db_id: str,
                    create: Callable[[str, bool], RecoveryPoint]) -> None:
    folder = requests_dir(repo, db_id)
    if not folder.is_dir():
        return
    for request in sorted(folder.glob("*.request")):
        done = request.with_suffix(".done")
        if done.exists():
            continue
        asked = json.loads(request.read_text())
        point = create(asked["name"], bool(asked.get("keep", False)))
        atomic_write(done, json.dumps({"name": point.name, "txn": point.txn,
                                       "chain": point.chain, "created_at": point.created_at}).encode())
        request.unlink()


def ask_protector(repo: Repository, db_id: str, name: str, timeout: float, *,
                  keep: bool = False) -> dict[str, object]:
    """Ask the running protector for a recovery point and wait for its answer."""
    folder = requests_dir(repo, db_id)
    make_folders(folder)
    request = folder / f"{uuid.uuid4().hex}.request"
    atomic_write(request, json.dumps({"name": name, "keep": keep}).encode())
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
        hint="Check that 'cps protect' is running and healthy; no recovery point was made.")
