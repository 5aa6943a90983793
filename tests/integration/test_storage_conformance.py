"""The storage seam's contract (repository/storage/base.py), held against every backend: a
local folder, an S3 bucket on a real SeaweedFS server, and that bucket behind the upload spool as
a protector's process uses it (puts spooled, uploaded by a thread). What a backend must do is
tested here once; what only one of them can get wrong (multipart uploads, checksums,
credentials) is tested after."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cps.config import S3Location
from cps.errors import MissingFile, StorageUnavailable
from cps.repository.storage import Entry, Storage, open_storage
from cps.repository.storage import s3 as s3_backend
from cps.repository.storage.local import LocalStorage
from cps.repository.storage.s3 import S3Storage
from cps.repository.storage.spool import SPOOL_BYTES, SpooledStorage, spooled_uploads
from tests.s3_server import SECRET_KEY, S3Server

BACKENDS = ["local", "s3", "spooled"]


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield open_storage(tmp_path / "repo")
        return
    location = request.getfixturevalue("s3_repository")
    if request.param == "s3":
        yield S3Storage(location)
        return
    spooled = open_storage(location)
    with spooled_uploads(spooled, SPOOL_BYTES):
        yield spooled


def sibling(storage: Storage) -> Storage:
    """A storage whose location's name starts with this one's: `repo-2` beside `repo`."""
    if isinstance(storage, LocalStorage):
        return LocalStorage(storage.root.with_name(storage.root.name + "-2"))
    if isinstance(storage, SpooledStorage):
        return sibling(storage.bucket)
    assert isinstance(storage, S3Storage)
    location = storage.location
    return S3Storage(dataclasses.replace(location, prefix=location.prefix + "-2"))


def leftovers(storage: Storage) -> list[str]:
    """What a failed put could have left that a listing does not show: temp files in a folder,
    multipart uploads never completed in a bucket."""
    if isinstance(storage, LocalStorage):
        return [str(Path(folder) / name) for folder, _dirs, names in os.walk(storage.root)
                for name in names]
    if isinstance(storage, SpooledStorage):
        return [str(path) for path in storage.spool.folder.glob(".*.tmp")] + \
            leftovers(storage.bucket)
    assert isinstance(storage, S3Storage)
    answer = storage._client.list_multipart_uploads(Bucket=storage.location.bucket,
                                                    Prefix=storage.location.prefix + "/")
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def failing_after(chunks: list[bytes]) -> Iterator[bytes]:
    yield from chunks
    raise RuntimeError("the source failed")


# Whole files


def test_a_file_put_is_read_whole_and_listed_with_its_size(storage: Storage) -> None:
    storage.put("databases/mail/status", b"status v1")
    assert storage.get("databases/mail/status") == b"status v1"
    assert storage.size("databases/mail/status") == 9
    assert storage.list("databases/mail") == [Entry("status", 9)]
    assert storage.list("databases") == [Entry("mail", 0, folder=True)]


def test_a_file_put_in_chunks_is_their_concatenation(storage: Storage) -> None:
    chunks = [b"header", b"", os.urandom(100_000), b"footer"]
    storage.put("segments/one.seg", iter(chunks))
    assert storage.get("segments/one.seg") == b"".join(chunks)


def test_a_file_larger_than_a_part_goes_up_whole(storage: Storage,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_backend, "PART_SIZE", 5 << 20)  # S3's smallest part
    chunks = [os.urandom(1 << 20) for _ in range(12)]  # three parts in a bucket
    storage.put("packs/ab/big.pack", iter(chunks))
    data = b"".join(chunks)
    assert storage.get("packs/ab/big.pack") == data
    assert storage.get_range("packs/ab/big.pack", (5 << 20) - 3, 6) == data[(5 << 20) - 3:(5 << 20) + 3]
    assert storage.list("packs", recursive=True) == [Entry("ab/big.pack", len(data))]


def test_a_put_that_fails_halfway_leaves_nothing(storage: Storage,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_backend, "PART_SIZE", 5 << 20)
    two_parts = [os.urandom(1 << 20) for _ in range(11)]
    with pytest.raises(RuntimeError, match="the source failed"):
        storage.put("packs/cd/half.pack", failing_after(two_parts))
    assert storage.size("packs/cd/half.pack") is None
    assert storage.list("", recursive=True) == []
    assert leftovers(storage) == []
    with pytest.raises(MissingFile):
        storage.get("packs/cd/half.pack")


def test_a_put_that_fails_keeps_the_file_it_would_have_replaced(storage: Storage) -> None:
    storage.put("databases/mail/status", b"before")
    with pytest.raises(RuntimeError):
        storage.put("databases/mail/status", failing_after([b"after, half"]))
    assert storage.get("databases/mail/status") == b"before"


def test_a_put_replaces_a_file_whole(storage: Storage) -> None:
    storage.put("databases/mail/status", b"a longer first version")
    storage.put("databases/mail/status", b"second")
    assert storage.get("databases/mail/status") == b"second"
    assert storage.list("databases/mail") == [Entry("status", 6)]


def test_an_empty_file_is_a_file(storage: Storage) -> None:
    storage.put("empty", b"")
    assert storage.get("empty") == b"" and storage.size("empty") == 0
    assert storage.get_range("empty", 0, 10) == b""


# Missing files and ranges


def test_a_missing_file_is_missing_and_named(storage: Storage) -> None:
    storage.put("databases/mail/database", b"x")
    for read in (lambda: storage.get("databases/mail/chain"),
                 lambda: storage.get_range("databases/mail/chain", 0, 4)):
        with pytest.raises(MissingFile) as raised:
            read()
        assert raised.value.path == storage.describe("databases/mail/chain")
        assert raised.value.message == f"{storage.describe('databases/mail/chain')} is missing"
    assert storage.size("databases/mail/chain") is None
    assert storage.size("databases/mail") is None, "a folder is not a file"
    storage.delete("databases/mail/chain")  # deleting what is not there is not an error


def test_ranges_are_the_bytes_that_exist_of_them(storage: Storage) -> None:
    data = bytes(range(256)) * 4
    storage.put("packs/ef/ranges.pack", data)
    key = "packs/ef/ranges.pack"
    assert storage.get_range(key, 0, 16) == data[:16]
    assert storage.get_range(key, 1000, 100) == data[1000:], "short at the end"
    assert storage.get_range(key, 1024, 10) == b"", "empty from the end on"
    assert storage.get_range(key, 5000, 10) == b"", "empty past the end"
    assert storage.get_range(key, 10, 0) == b""


# Listings


def test_a_listing_never_shows_a_sibling_whose_name_starts_the_same(storage: Storage) -> None:
    for key in ("a/b/x", "a/bc/y", "a/b2", "a/b-notes", "ab/z"):
        storage.put(key, key.encode())
    assert storage.list("a/b") == [Entry("x", 5)]
    assert storage.list("a") == [Entry("b", 0, folder=True), Entry("b-notes", 9),
                                 Entry("b2", 4), Entry("bc", 0, folder=True)]
    assert storage.list("a", recursive=True) == [Entry("b-notes", 9), Entry("b/x", 5),
                                                 Entry("b2", 4), Entry("bc/y", 6)]
    assert storage.list("a/b/x") == [], "a file is not a folder"
    assert storage.list("nothing") == []


def test_a_repository_never_sees_one_whose_location_starts_the_same(storage: Storage) -> None:
    neighbour = sibling(storage)
    neighbour.put("config", b"the neighbour's")
    assert storage.list("") == [] and storage.size("config") is None
    storage.put("config", b"mine")
    assert neighbour.get("config") == b"the neighbour's"
    assert [e.name for e in neighbour.list("", recursive=True)] == ["config"]


def test_a_folder_holds_no_file_once_its_last_is_deleted(storage: Storage) -> None:
    storage.put("databases/mail/chains/00000001/chain", b"c")
    storage.put("databases/mail/database", b"d")
    storage.delete("databases/mail/chains/00000001/chain")
    assert storage.list("databases/mail", recursive=True) == [Entry("database", 1)]
    assert storage.list("databases/mail/chains/00000001") == []


def test_a_listing_holds_every_file_past_a_thousand(storage: Storage) -> None:
    keys = [f"databases/mail/chains/00000001/segments/{n:016x}.seg" for n in range(1050)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: storage.put(key, key.encode()), keys))
    listed = storage.list("databases/mail/chains/00000001/segments")
    assert [f"databases/mail/chains/00000001/segments/{e.name}" for e in listed] == keys
    assert len(storage.list("databases", recursive=True)) == 1050


def test_keys_are_relative_paths_of_plain_names(storage: Storage) -> None:
    for key in ("", "/config", "../config", "a/../b", "a//b", "a/", "./a", "a b"):
        with pytest.raises(ValueError, match="not a repository key"):
            storage.put(key, b"x")


# What only a bucket can get wrong


def test_every_put_carries_a_checksum_the_server_verified_and_keeps(
        s3_repository: S3Location) -> None:
    storage = S3Storage(s3_repository)
    data = os.urandom(4096)
    storage.put("packs/01/checked.pack", data)
    stored = storage._client.head_object(Bucket=s3_repository.bucket,
                                         Key=f"{s3_repository.prefix}/packs/01/checked.pack",
                                         ChecksumMode="ENABLED")
    assert stored["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_wrong_credentials_are_refused_and_never_shown(s3_repository: S3Location,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-" + SECRET_KEY)
    storage = S3Storage(s3_repository)
    with pytest.raises(StorageUnavailable) as raised:
        storage.get("config")
    assert "SignatureDoesNotMatch" in raised.value.message
    assert raised.value.hint is not None and "secret key" in raised.value.hint
    assert SECRET_KEY not in f"{raised.value.message} {raised.value.hint}"
    assert isinstance(raised.value, OSError), "capture rides it out as a write failure"


def test_a_missing_bucket_says_so(s3_repository: S3Location) -> None:
    storage = S3Storage(dataclasses.replace(s3_repository, bucket="no-such-bucket-here"))
    with pytest.raises(StorageUnavailable, match="NoSuchBucket") as raised:
        storage.list("")
    assert raised.value.hint is not None and "Create the bucket" in raised.value.hint


def test_a_store_that_cannot_be_reached_is_unavailable(s3_repository: S3Location,
                                                       s3_server: S3Server,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_backend, "ATTEMPTS", 1)
    closed = s3_server.endpoint_url.rsplit(":", 1)[0] + ":1"
    storage = S3Storage(dataclasses.replace(s3_repository, endpoint_url=closed))
    with pytest.raises(StorageUnavailable, match="cannot use s3://"):
        storage.put("config", b"x")
