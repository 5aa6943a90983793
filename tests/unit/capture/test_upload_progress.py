"""What the protector's status says of uploads (capture/upload_progress.py), from a real spool whose
uploader is held back: another holder of the spool's uploader lock stands for an uploader at work
elsewhere, so the files stay where the test put them."""

from __future__ import annotations

from pathlib import Path

from cps.capture.upload_progress import UploadProgress
from cps.repository import FullRef, ProtectorStatus, SegmentRef, naming
from cps.repository.storage.local import LocalStorage
from cps.repository.storage.spool import Spool, SpooledStorage, Uploader

CHAIN = naming.chain_dir("mail", 1)


def segment_key(first: int, last: int, first_time: int) -> str:
    ref = SegmentRef(1, first, last, first_time, first_time + 10)
    return f"{CHAIN}/segments/{naming.format_segment(ref)}"


def status(durable_txn: int) -> ProtectorStatus:
    return ProtectorStatus(state="protecting", updated_at=0, chain=1, last_txn=durable_txn,
                           source_path="/mail.db", synced_through=5000, durable_txn=durable_txn)


def test_the_bucket_holds_what_comes_before_the_first_waiting_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    storage = SpooledStorage(LocalStorage(tmp_path / "bucket"), spool)
    storage.spooling = True
    events: list[str] = []
    with spool.locked(".uploader.lock"):
        uploader = Uploader(storage.bucket, spool)
        progress = UploadProgress(uploader, "mail", lambda name, _fields: events.append(name))
        assert progress.report(status(4)).uploaded_txn == 4  # nothing waits: all is there

        storage.put("databases/mail/status", b"a status waiting changes nothing")
        reported = progress.report(status(4))
        assert (reported.uploaded_txn, reported.uploaded_through) == (4, 5000)
        assert reported.upload_waiting_files == 1 and reported.upload_lag is not None

        storage.put(segment_key(5, 7, 4000), b"segment")
        storage.put(segment_key(8, 9, 4500), b"segment")
        reported = progress.report(status(9))
        assert (reported.uploaded_txn, reported.uploaded_through) == (4, 4000)
        assert reported.upload_waiting_bytes == len(b"a status waiting changes nothing") + 14

        storage.put(f"{CHAIN}/fulls/{naming.format_full(FullRef(1, 9, 4600))}", b"full")
        spool.drop(segment_key(5, 7, 4000))
        spool.drop(segment_key(8, 9, 4500))
        assert progress.report(status(9)).uploaded_txn == 4, "a full waiting proves nothing more"
        uploader.close()
    assert events == []  # nothing failed
