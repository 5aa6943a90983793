"""Where repository files live: the `Storage` seam (base.py) and its backends, a local folder
(local.py) and S3 (s3.py), chosen by the repository's location (config.Location, location.py)."""

from .base import Entry, ObjectLock, Storage
from .cache import RangeCache
from .location import (
    coordination_folder,
    location_fields,
    location_from,
    lock_new_files,
    open_storage,
)

__all__ = [
    "Entry",
    "ObjectLock",
    "RangeCache",
    "Storage",
    "coordination_folder",
    "location_fields",
    "location_from",
    "lock_new_files",
    "open_storage",
]
