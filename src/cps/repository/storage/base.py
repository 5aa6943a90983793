"""The storage seam: what a repository needs from the place its files live.

A repository is a set of immutable files named by keys, `/`-separated relative paths such as
`databases/mail01/chains/00000001/chain` (naming.py builds them). Everything the repository reads
and writes goes through `Storage`, so the same code runs on a local folder (local.py) and on an
S3 bucket (s3.py); `tests/integration/test_storage_conformance.py` holds both to this contract:

- `put` makes a file whole or not at all: a reader, a listing or a crash sees the old file, none,
  or the complete new one, never a part, and a put that fails leaves no trace. Putting a key that
  exists replaces it whole (only `status` is ever replaced; other files are written once).
- `get` and `get_range` raise MissingFile for a key that holds no file, CorruptFile for one that
  cannot be read. A range is the bytes that exist of it: short at the end of the file, empty from
  the end on.
- `list` names the files and sub-folders directly in a folder (every file below it with
  `recursive`), sorted, with their sizes; never a sibling whose name merely starts the same, and
  never a put in progress. A folder is made by putting a file in it; once its last file is
  deleted, some stores (SeaweedFS) still list it as a sub-folder for a while, so a reader takes a
  folder that holds no file for an absent one.
- `delete` removes a file; deleting a missing one is not an error.

A storage that cannot be reached, or refuses a request, raises StorageUnavailable (an OSError
too, so that capture rides it out as it rides out a full disk); other failures of the local file
system are OSErrors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ...config import is_key

Data = bytes | Iterable[bytes]  # a whole file, or its chunks in order


@dataclass(frozen=True, slots=True)
class ObjectLock:
    """S3 Object Lock for the files a repository never replaces: each is put with this retention
    mode (COMPLIANCE or GOVERNANCE) until `seconds` after its put, and no credentials can delete
    it before then (docs/storage.md, "Immutable backups")."""

    mode: str
    seconds: int

    MODES = ("COMPLIANCE", "GOVERNANCE")

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode, "seconds": self.seconds}

    @classmethod
    def from_json(cls, value: object) -> ObjectLock:
        if not isinstance(value, dict) or value.get("mode") not in cls.MODES or \
                not isinstance(value.get("seconds"), int) or value["seconds"] < 1:
            raise ValueError(f"not an object lock setting: {value!r}")
        return cls(value["mode"], value["seconds"])


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a listing, relative to the folder listed."""

    name: str
    size: int  # bytes; 0 for a folder
    folder: bool = False


class Storage(Protocol):
    remote: bool  # reads cross a network: worth caching and reading ahead

    def describe(self, key: str = "") -> str:
        """Where `key` is, for messages: a path, or a URL (never credentials)."""
        ...

    def put(self, key: str, data: Data) -> None:
        """Store `data` under `key`, whole and durably, replacing what was there."""
        ...

    def get(self, key: str) -> bytes:
        ...

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        ...

    def size(self, key: str) -> int | None:
        """The size of the file at `key`; None when there is none."""
        ...

    def list(self, folder: str, *, recursive: bool = False) -> list[Entry]:
        ...

    def delete(self, key: str) -> None:
        ...


def check_key(key: str) -> str:
    """`key`, refused when it is not a relative path of plain names (config.is_key)."""
    if not is_key(key):
        raise ValueError(f"not a repository key: {key!r}")
    return key


def check_folder(folder: str) -> str:
    """A folder key: a key, or "" for the top of the repository."""
    return folder if folder == "" else check_key(folder)
