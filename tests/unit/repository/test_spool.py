"""The upload spool (repository/storage/spool.py) in front of a real storage: a local folder stands
for the bucket here, so that what reaches it, and in which order, can be looked at directly; the
same spool in front of a real S3 server is held to the storage contract in
tests/integration/test_storage_conformance.py and through faults in test_s3_outage.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cps.errors import MissingFile, StorageUnavailable
from cps.repository.storage import Entry
from cps.repository.storage.local import LocalStorage
from cps.repository.storage.spool import (
    Spool,
    SpooledStorage,
    spooled_uploads,
    upload_unless_uploading,
)

SEGMENTS = [f"databases/mail/chains/00000001/segments/{n:04d}.seg" for n in range(3)]
STATUS = "databases/mail/status"


def spooled_storage(tmp_path: Path, limit: int = 1 << 20) -> SpooledStorage:
    storage = SpooledStorage(LocalStorage(tmp_path / "bucket"), Spool(tmp_path / "spool", limit))
    storage.spooling = True
    return storage


def bucket_files(storage: SpooledStorage) -> list[str]:
    return [entry.name for entry in storage.bucket.list("", recursive=True)]


def test_puts_wait_in_the_spool_in_put_order_and_are_read_from_it(tmp_path: Path) -> None:
    storage = spooled_storage(tmp_path)
    for number, key in enumerate(SEGMENTS):
        storage.put(key, b"x" * (number + 1))
    assert [s.key for s in storage.spool.files()] == SEGMENTS
    assert bucket_files(storage) == []
    assert storage.get(SEGMENTS[1]) == b"xx"
    assert storage.get_range(SEGMENTS[2], 1, 5) == b"xx"
    assert storage.size(SEGMENTS[2]) == 3
    assert storage.list("databases/mail") == [Entry("chains", 0, folder=True)]
    assert [e.name for e in storage.list("databases", recursive=True)] == [
        key.removeprefix("databases/") for key in SEGMENTS]


def test_uploads_go_in_put_order_and_empty_the_spool(tmp_path: Path) -> None:
    storage = spooled_storage(tmp_path)
    for key in SEGMENTS:
        storage.put(key, key.encode())
    upload_unless_uploading(storage.bucket, storage.spool)
    assert storage.spool.files() == []
    assert bucket_files(storage) == SEGMENTS
    landed = [(tmp_path / "bucket" / key).stat().st_mtime_ns for key in SEGMENTS]
    assert landed == sorted(landed), "uploaded out of put order"
    assert [storage.get(key) for key in SEGMENTS] == [key.encode() for key in SEGMENTS]


def test_a_newer_put_of_a_key_replaces_the_one_waiting(tmp_path: Path) -> None:
    storage = spooled_storage(tmp_path)
    storage.put(STATUS, b"status 1")
    storage.put(SEGMENTS[0], b"segment")
    storage.put(STATUS, b"status 2")
    assert [s.key for s in storage.spool.files()] == [SEGMENTS[0], STATUS]
    assert storage.get(STATUS) == b"status 2"


def test_a_delete_waits_its_turn_and_hides_the_file_meanwhile(tmp_path: Path) -> None:
    storage = spooled_storage(tmp_path)
    storage.put(SEGMENTS[0], b"first")
    upload_unless_uploading(storage.bucket, storage.spool)
    storage.put(SEGMENTS[1], b"second")
    storage.delete(SEGMENTS[0])
    assert [(s.key, s.deletion) for s in storage.spool.files()] == [(SEGMENTS[1], False),
                                                                    (SEGMENTS[0], True)]
    assert bucket_files(storage) == [SEGMENTS[0]], "deleted before its turn"
    assert storage.size(SEGMENTS[0]) is None
    with pytest.raises(MissingFile):
        storage.get(SEGMENTS[0])
    assert [e.name for e in storage.list("", recursive=True)] == [SEGMENTS[1]]
    upload_unless_uploading(storage.bucket, storage.spool)
    assert bucket_files(storage) == [SEGMENTS[1]] and storage.spool.files() == []


def test_a_full_spool_refuses_a_put_and_keeps_nothing_of_it(tmp_path: Path) -> None:
    storage = spooled_storage(tmp_path, limit=100)
    storage.put(SEGMENTS[0], b"a" * 60)
    with pytest.raises(StorageUnavailable, match="is full") as refused:
        storage.put(SEGMENTS[1], b"b" * 60)
    assert isinstance(refused.value, OSError), "capture rides it out as a write failure"
    assert [s.key for s in storage.spool.files()] == [SEGMENTS[0]]
    assert sorted(os.listdir(tmp_path / "spool")) == [".sequence.lock", storage.spool.files()[0]
                                                      .path.name], "a temp file was left"
    upload_unless_uploading(storage.bucket, storage.spool)
    storage.put(SEGMENTS[1], b"b" * 60)  # room again once the bucket took the first
    with pytest.raises(StorageUnavailable, match="larger than the spool"):
        storage.put(SEGMENTS[2], b"c" * 101)


def test_a_put_that_does_not_spool_goes_after_what_waits(tmp_path: Path) -> None:
    """Another command writing to the bucket from this host (no protector running) uploads what
    the spool holds first, and its file replaces a waiting one of the same key."""
    storage = spooled_storage(tmp_path)
    storage.put(SEGMENTS[0], b"segment")
    storage.put(STATUS, b"old status")
    storage.spooling = False
    storage.put(STATUS, b"new status")
    assert storage.spool.files() == []
    assert bucket_files(storage) == [SEGMENTS[0], STATUS]
    assert storage.bucket.get(STATUS) == b"new status"


def test_the_uploader_empties_the_spool_and_what_is_left_survives_a_restart(
        tmp_path: Path) -> None:
    storage = spooled_storage(tmp_path)
    storage.put(SEGMENTS[0], b"left by a protector that died")
    storage.spooling = False
    again = SpooledStorage(LocalStorage(tmp_path / "bucket"), Spool(tmp_path / "spool"))
    with spooled_uploads(again, 1 << 20) as uploader:
        assert uploader is not None
        again.put(SEGMENTS[1], b"written by the next one")
        uploader.wait_idle()
        assert uploader.state().waiting == [] and uploader.state().error is None
        again.put(SEGMENTS[2], b"written just before the stop")
    assert bucket_files(again) == SEGMENTS, "the stop left a file behind"
    assert again.spooling is False
