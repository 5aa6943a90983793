"""Where repository files live: the `Storage` seam (base.py) and its backends, a local folder
(local.py) and S3 (s3.py) behind a local upload spool (spool.py), chosen by the repository's
location (config.Location, location.py)."""

from .base import Entry, ObjectLock, Storage
from .cache import RangeCache
from .location import (
    coordination_folder,
    location_fields,
    location_from,
    lock_new_files,
    open_storage,
)
from .spool import SPOOL_BYTES, Uploader, UploadState, spool_puts, spooled_uploads, spooling_limit

__all__ = [
    "Entry",
    "ObjectLock",
    "SPOOL_BYTES",
    "RangeCache",
    "Storage",
    "UploadState",
    "Uploader",
    "coordination_folder",
    "location_fields",
    "location_from",
    "lock_new_files",
    "open_storage",
    "spool_puts",
    "spooled_uploads",
    "spooling_limit",
]
