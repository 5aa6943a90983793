"""Continuous capture of a SQLite database's WAL into a repository (the protector).

Owns reading the WAL (`sqlite_wal.py`, whose docstring is the format), following it across resets
(`wal_follower.py`), holding checkpoints back until frames are durable in the repository
(`pinning.py`), writing the captured log on a thread of its own (`segment_writer.py`), full backups
taken while writers go on (`full_backup.py`) by a child process (`full_process.py`), and the protect
loop with its chains, schedules and recovery points (`protector.py`). It writes to the repository
and never reads mail.
"""

from .options import ProtectOptions
from .protector import Protector
from .requests import ask_for_full, ask_protector
from .sqlite_db import require_wal_mode

__all__ = ["ProtectOptions", "Protector", "ask_for_full", "ask_protector", "require_wal_mode"]
