"""The audit log: who did what to which mail, when. Append-only, one JSON object a line.

Every restore, recovery, export and look at a message's content is appended to
`<state_dir>/audit.log` before its result is returned, and the file is fsynced, so an entry is never
lost to a crash that the action itself survived. Nothing in CPS rewrites or truncates the file;
rotate it with the system's tools (it is opened for each entry, so a rotated file is left alone).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..durable import make_folders
from .auth import Principal


class AuditLog:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "audit.log"
        self._lock = threading.Lock()

    def record(self, who: Principal, action: str, db_id: str | None, **details: Any) -> None:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who.name,
                 "role": who.role, "action": action, "db": db_id, **details}
        line = (json.dumps(entry, default=str, ensure_ascii=False) + "\n").encode()
        with self._lock:
            make_folders(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]
