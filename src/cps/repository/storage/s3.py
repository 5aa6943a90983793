"""`S3Storage`: a repository in an S3 bucket (AWS, or any S3-compatible store: MinIO, SeaweedFS).

Keys are object keys below the location's prefix: `s3://bucket/backups/mail` keeps `config` as
the object `backups/mail/config`. Credentials come from the standard AWS chain only (environment,
shared credentials and config files, the location's profile, instance roles) and are never part
of the location, of a message or of a log line.

- A put is atomic as S3 makes every object: an object is visible only once whole. A file larger
  than PART_SIZE goes up as a multipart upload, PARALLEL_PARTS parts at a time, aborted when
  anything fails before it completes, so a failed put leaves nothing behind, not even parts.
- Every put sends a SHA-256 checksum of its bytes (of each part), which the server verifies before
  it stores them; every whole read asks for the stored checksum and botocore verifies the bytes
  against it where the server keeps one. Ranged reads carry no checksum; CPS's own checks (each
  file's SHA-256, each page's content address) catch damage there, as they do on any storage.
- Requests are retried with backoff by botocore ("standard" mode); a request that still fails is
  StorageUnavailable, saying whether the storage could not be reached or refused, and why.
- With Object Lock (`lock_new_files`), each file the repository never replaces is put with a
  retention; the bucket keeps versions, so a delete removes every version of the file, which S3
  refuses for a version still retained (FileRetained). A plain delete would only hide the file
  behind a delete marker and leave its bytes, unreachable to CPS, in the bucket.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

from ...errors import CorruptFile, FileRetained, MissingFile, RepositoryError, StorageUnavailable
from .base import Data, Entry, ObjectLock, check_folder, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ...config import S3Location

PART_SIZE = 8 << 20  # bytes a multipart upload sends at a time (S3 takes 5 MiB to 5 GiB)
PARALLEL_PARTS = 4  # parts of one upload in flight at once: memory holds as many
CHECKSUM: Final = "SHA256"
ATTEMPTS = 5  # tries of one request, with botocore's backoff between them

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_HINTS = {
    "NoSuchBucket": "Create the bucket, or check its name and the endpoint URL.",
    "AccessDenied": "Give credentials allowed to read, write, list and delete objects under the "
                    "repository's prefix.",
    "InvalidAccessKeyId": "Check the access key of the credentials in use (AWS_ACCESS_KEY_ID, "
                          "the shared credentials file or the profile).",
    "SignatureDoesNotMatch": "Check the secret key of the credentials in use.",
}
_UNREACHABLE_HINT = ("Check the endpoint URL, the network and the credentials (environment, "
                     "shared credentials file or profile), then run the command again.")


class S3Storage:
    remote = True

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self._base = f"{location.prefix}/" if location.prefix else ""
        with self._requests(""):
            session = boto3.session.Session(profile_name=location.profile)
            self._client: S3Client = session.client(
                "s3", endpoint_url=location.endpoint_url, region_name=location.region,
                config=Config(
                    retries={"mode": "standard", "max_attempts": ATTEMPTS},
                    connect_timeout=10, read_timeout=60, max_pool_connections=16,
                    request_checksum_calculation="when_supported",
                    response_checksum_validation="when_supported"))
        self.object_lock: ObjectLock | None = None
        self._locked: Callable[[str], bool] = _never

    def lock_new_files(self, lock: ObjectLock, locked: Callable[[str], bool]) -> None:
        """Put every file whose key `locked` accepts with `lock`'s retention from now on."""
        self.object_lock, self._locked = lock, locked

    def require_object_lock(self) -> None:
        """Refuse a bucket without Object Lock, where a retention could not be set."""
        with self._requests(""):
            try:
                answer = self._client.get_object_lock_configuration(Bucket=self.location.bucket)
                enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise
                enabled = None
        if enabled != "Enabled":
            raise RepositoryError(
                f"the bucket {self.location.bucket} does not have Object Lock enabled",
                hint="Object Lock can only be turned on when a bucket is created: create one with "
                     "it (aws s3api create-bucket --object-lock-enabled-for-bucket ...), or leave "
                     "out --object-lock (docs/storage.md).")

    def describe(self, key: str = "") -> str:
        return f"s3://{self.location.bucket}/{self._object(key) if key else self._base}"

    def put(self, key: str, data: Data) -> None:
        name = self._object(check_key(key))
        parts = _parts([data] if isinstance(data, bytes) else data)
        first = next(parts, b"")
        second = next(parts, None)
        retention = self._retention(key)
        with self._requests(key):
            if second is None:
                self._client.put_object(Bucket=self.location.bucket, Key=name, Body=first,
                                        ChecksumAlgorithm=CHECKSUM, **retention)
            else:
                self._multipart(name, itertools.chain([first, second], parts), retention)

    def _retention(self, key: str) -> dict[str, Any]:
        """The Object Lock arguments of a put of `key` now (none without a lock)."""
        if self.object_lock is None or not self._locked(key):
            return {}
        until = datetime.fromtimestamp(time.time() + self.object_lock.seconds, UTC)
        return {"ObjectLockMode": self.object_lock.mode, "ObjectLockRetainUntilDate": until}

    def _multipart(self, name: str, parts: Iterable[bytes], retention: dict[str, Any]) -> None:
        bucket = self.location.bucket
        upload = self._client.create_multipart_upload(Bucket=bucket, Key=name,
                                                      ChecksumAlgorithm=CHECKSUM,
                                                      **retention)["UploadId"]
        try:
            done: list[Any] = []
            with ThreadPoolExecutor(PARALLEL_PARTS, thread_name_prefix="cps-s3-part") as pool:
                sending: collections.deque[Future[Any]] = collections.deque()
                for number, part in enumerate(parts, 1):
                    if len(sending) == PARALLEL_PARTS:
                        done.append(sending.popleft().result())
                    sending.append(pool.submit(self._part, name, upload, number, part))
                done += [future.result() for future in sending]
            self._client.complete_multipart_upload(Bucket=bucket, Key=name, UploadId=upload,
                                                   MultipartUpload={"Parts": done})
        except BaseException:
            with suppress(ClientError, BotoCoreError):  # the error that stopped it is the one to tell
                self._client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload)
            raise

    def _part(self, name: str, upload: str, number: int, part: bytes) -> dict[str, Any]:
        answer = self._client.upload_part(Bucket=self.location.bucket, Key=name, UploadId=upload,
                                          PartNumber=number, Body=part, ChecksumAlgorithm=CHECKSUM)
        return {"PartNumber": number, "ETag": answer["ETag"],
                "ChecksumSHA256": answer.get("ChecksumSHA256", "")}

    def get(self, key: str) -> bytes:
        with self._requests(key):
            answer = self._client.get_object(Bucket=self.location.bucket,
                                             Key=self._object(check_key(key)),
                                             ChecksumMode="ENABLED")
            return answer["Body"].read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        with self._requests(key):
            try:
                answer = self._client.get_object(Bucket=self.location.bucket,
                                                 Key=self._object(check_key(key)),
                                                 Range=f"bytes={offset}-{offset + length - 1}")
            except ClientError as exc:
                if _code(exc) == "InvalidRange":  # the file ends before `offset`
                    return b""
                raise
            return answer["Body"].read()

    def size(self, key: str) -> int | None:
        try:
            with self._requests(key):
                answer = self._client.head_object(Bucket=self.location.bucket,
                                                  Key=self._object(check_key(key)))
        except MissingFile:
            return None
        return answer["ContentLength"]

    def list(self, folder: str, *, recursive: bool = False) -> list[Entry]:
        prefix = self._base + (f"{check_folder(folder)}/" if folder else "")
        arguments: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
        if not recursive:
            arguments["Delimiter"] = "/"
        found = []
        with self._requests(folder):
            for page in self._client.get_paginator("list_objects_v2").paginate(**arguments):
                found += [Entry(item["Key"][len(prefix):], item["Size"])
                          for item in page.get("Contents", []) if item["Key"] != prefix]
                found += [Entry(item["Prefix"][len(prefix):].rstrip("/"), 0, folder=True)
                          for item in page.get("CommonPrefixes", [])]
        return sorted(found, key=lambda e: e.name)

    def delete(self, key: str) -> None:
        name = self._object(check_key(key))
        with self._requests(key):
            if self.object_lock is None:
                self._client.delete_object(Bucket=self.location.bucket, Key=name)
                return
            for version in self._versions(name):
                try:
                    self._client.delete_object(Bucket=self.location.bucket, Key=name,
                                               VersionId=version)
                except ClientError as exc:
                    if _code(exc) != "AccessDenied":
                        raise
                    raise FileRetained(f"{self.describe(key)} is under Object Lock retention "
                                       "and cannot be deleted yet", path=self.describe(key),
                                       hint="It can be deleted once its retention ends.") from None

    def _versions(self, name: str) -> tuple[str, ...]:
        """Every version id of the object `name`, delete markers included."""
        pages = self._client.get_paginator("list_object_versions").paginate(
            Bucket=self.location.bucket, Prefix=name)
        return tuple(item["VersionId"] for page in pages
                     for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                     if item["Key"] == name)

    def _object(self, key: str) -> str:
        return self._base + key

    @contextmanager
    def _requests(self, key: str) -> Iterator[None]:
        """Failures of the requests made inside, as CPS errors naming `key`."""
        where = self.describe(key)
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING_CODES:
                raise MissingFile(f"{where} is missing", path=where) from None
            message = exc.response.get("Error", {}).get("Message") or code
            raise StorageUnavailable(f"the storage refused a request for {where}: {message} "
                                     f"({code})", hint=_HINTS.get(code, _UNREACHABLE_HINT),
                                     path=where) from None
        except FlexibleChecksumError:
            raise CorruptFile(f"{where} was received with bytes that do not match the checksum "
                              "the storage keeps", hint="Run the command again; if it fails the "
                              "same way, the object is damaged in the bucket.", path=where) from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot use {where}: {exc}", hint=_UNREACHABLE_HINT,
                                     path=where) from None


def _never(_key: str) -> bool:
    return False


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _parts(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks` regrouped into parts of at least PART_SIZE bytes (the last may be smaller)."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= PART_SIZE:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
