"""The workload generator: realistic, reproducible mailbox activity against a mail database.

It delivers mail (generated, or real messages from a corpus folder), reads it, flags it, moves and
deletes it, empties Deleted Items, and creates, renames and deletes folders, in a fixed mix
(`operations.py`), at a chosen rate (`runner.py`), each operation one transaction through the public
`MailDatabase` API. The same seed on the same starting database performs the same operations, and the
optional operation log (`log.py`, format documented there and in `docs/workload.md`) records each
committed transaction precisely enough to rebuild the database's content from it. Backup, restore and
recovery tests use it as their source of change and `replay.py` turns the log back into the
content the database should hold at any moment, their oracle; benchmarks use it as load.
"""

from .corpus import Corpus
from .log import OperationLog
from .operations import OPERATION_MIX, OPERATIONS
from .replay import LogMismatch, LogModel, database_content, read_log, replay
from .runner import WorkloadGenerator, WorkloadSummary, mailbox_address, run_workload

__all__ = [
    "OPERATIONS",
    "OPERATION_MIX",
    "Corpus",
    "LogMismatch",
    "LogModel",
    "OperationLog",
    "WorkloadGenerator",
    "WorkloadSummary",
    "database_content",
    "mailbox_address",
    "read_log",
    "replay",
    "run_workload",
]
