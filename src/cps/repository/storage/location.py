"""The storage of a repository's location (config.Location: a folder, or an S3 location).

Locks and recovery-point requests coordinate processes through `flock` and files on one host,
which a bucket cannot hold: a repository in a bucket keeps them in a local folder of its own,
`coordination_folder`, named after the location, under CPS_STATE_DIR (default
`$XDG_STATE_HOME/cps`, else `~/.local/state/cps`). Processes on one host therefore coordinate as
they do on a local repository; processes on two hosts using one bucket do not (docs/storage.md).
The same folder holds the upload spool (spool.py), through which a protector writes the bucket.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...config import Location, S3Location
from ...errors import RepositoryError
from .base import ObjectLock, Storage
from .local import LocalStorage
from .spool import Spool, SpooledStorage


def open_storage(location: Location) -> Storage:
    if isinstance(location, Path):
        return LocalStorage(location)
    from .s3 import S3Storage  # boto3 takes a while to import; local repositories never need it

    return SpooledStorage(S3Storage(location), Spool(coordination_folder(location) / "spool"))


def lock_new_files(storage: Storage, lock: ObjectLock, locked: Callable[[str], bool], *,
                   check_bucket: bool = False) -> None:
    """Retain every file `locked` accepts under `lock` from now on (S3Storage.lock_new_files),
    first making sure the bucket has Object Lock with `check_bucket`; a folder cannot retain
    anything, and says so."""
    from .s3 import S3Storage

    if isinstance(storage, SpooledStorage):
        storage = storage.bucket
    if not isinstance(storage, S3Storage):
        raise RepositoryError(f"{storage.describe()} is a folder: Object Lock needs an S3 bucket",
                              hint="Use an s3://bucket/prefix repository, or leave out "
                                   "--object-lock.")
    if check_bucket:
        storage.require_object_lock()
    storage.lock_new_files(lock, locked)


def coordination_folder(location: Location) -> Path:
    """The local folder holding the repository's locks and requests (see the module docstring)."""
    if isinstance(location, Path):
        return location
    state = os.environ.get("CPS_STATE_DIR") or str(
        Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "cps")
    where = f"{location.endpoint_url or ''}\n{location.bucket}\n{location.prefix}"
    digest = hashlib.sha256(where.encode()).hexdigest()[:16]
    return Path(state) / "s3" / f"{location.bucket}-{digest}"


def location_fields(location: Location) -> dict[str, Any]:
    """`location` as JSON fields, for another process to open it (`location_from`), whatever
    its working folder."""
    return {"path": str(location.resolve())} if isinstance(location, Path) else asdict(location)


def location_from(fields: dict[str, Any]) -> Location:
    return Path(fields["path"]) if "path" in fields else S3Location(**fields)
