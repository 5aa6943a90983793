"""The repository: the backup-to-disk folder and its on-disk contract (docs/repository-format.md).

Owns every file in a repository: their formats, names, checksums, compression, encryption, locks,
and the order they are written and read in. It knows SQLite pages and transactions, never mail.
"""

from .copy import CopyReport, copy_repository
from .crypto import RecordCompressor
from .model import (
    PAGE_ID_SIZE,
    Chain,
    ChainEnd,
    ChainFolder,
    DatabaseInfo,
    DrilledPoint,
    DrillRecord,
    FullBackup,
    FullRef,
    ProtectorStatus,
    PrunedRange,
    RecoveryPoint,
    Segment,
    SegmentRef,
    Transaction,
    UnreadableFile,
    WalPosition,
)
from .packs import PackWriter, PageIndex, PageLocation
from .repository import Repository
from .segments import BuiltSegment, SegmentBuilder

__all__ = [
    "PAGE_ID_SIZE",
    "BuiltSegment",
    "Chain",
    "ChainEnd",
    "ChainFolder",
    "CopyReport",
    "DatabaseInfo",
    "DrillRecord",
    "DrilledPoint",
    "FullBackup",
    "FullRef",
    "PackWriter",
    "PageIndex",
    "PageLocation",
    "PrunedRange",
    "ProtectorStatus",
    "RecordCompressor",
    "RecoveryPoint",
    "Repository",
    "Segment",
    "SegmentBuilder",
    "SegmentRef",
    "Transaction",
    "UnreadableFile",
    "WalPosition",
    "copy_repository",
]
