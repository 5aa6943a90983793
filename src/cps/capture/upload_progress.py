"""How far the bucket has got with what the protector wrote through the upload spool
(repository/storage/spool.py), for its status; and the events when uploads begin and stop failing.

The spool uploads in write order, so the transactions in the bucket are those before the first of
this database's segments still waiting (its status and recovery points waiting change nothing of
what can be restored). While this database's first waiting file of its chains is another kind (a
chain's file, a full backup), what the bucket holds is not known more precisely than before: the
figures stay where they were.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from ..repository import ProtectorStatus, SegmentRef, naming
from ..repository.storage import Uploader

Events = Callable[[str, dict[str, object]], None]


class UploadProgress:
    def __init__(self, uploads: Uploader, db_id: str, on_event: Events) -> None:
        self.uploads = uploads
        self.prefix = f"{naming.database_dir(db_id)}/chains/"  # its log and full backups
        self.on_event = on_event
        self.txn: int | None = None
        self.through = 0
        self.failed_at: int | None = None  # the last outage of uploads (ms)
        self.recovered_at: int | None = None

    def report(self, status: ProtectorStatus) -> ProtectorStatus:
        """`status` with how far uploads have got."""
        state = self.uploads.state()
        self._observe(state.error)
        first = next((s.key for s in state.waiting if s.key.startswith(self.prefix)), None)
        if first is None:
            self.txn, self.through = status.durable_txn, status.synced_through
        elif (segment := _segment(first)) is not None:
            self.txn, self.through = segment.first_txn - 1, segment.first_time
        lag = state.lag()
        return dataclasses.replace(
            status, uploaded_txn=self.txn, uploaded_through=self.through,
            upload_waiting_files=len(state.waiting), upload_waiting_bytes=state.waiting_bytes,
            upload_lag=round(lag, 3) if lag is not None else None, upload_error=state.error,
            upload_failed_at=self.failed_at, upload_recovered_at=self.recovered_at)

    def _observe(self, error: str | None) -> None:
        failing = self.failed_at is not None and self.recovered_at is None
        now = int(time.time() * 1000)
        if error is not None and not failing:
            self.failed_at, self.recovered_at = now, None
            self.on_event("upload-failed", {"error": error})
        elif error is None and failing:
            self.recovered_at = now
            self.on_event("upload-recovered",
                          {"seconds": (now - (self.failed_at or now)) / 1000})


def _segment(key: str) -> SegmentRef | None:
    """The segment `key` names; None for a key of another kind."""
    if naming.key_kind(key) != "segment":
        return None
    parts = key.split("/")
    chain = naming.parse_chain_dir(parts[3])
    return naming.parse_segment(chain, parts[5]) if chain is not None else None
