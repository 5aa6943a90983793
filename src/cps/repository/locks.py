"""The lock protocol: one protector per database, many readers, prune alone.

Locks are `flock` locks on files under locks/, so they vanish with the process that held them,
SIGKILL included; a lock file's content (pid, host, command, since) only tells people who holds it.

    locks/protect-<db>   exclusive: the one process capturing that database
    locks/repository     shared by everything that reads or adds data (protect, restore, verify);
                         exclusive for prune, which deletes data others may be reading

A shared lock is taken through a read-only descriptor, so reading writes nothing to a repository
whose lock file exists. A repository that cannot be written (a read-only mount of an off-site
copy) is read without the lock when the file is missing too: nothing can prune it through that path.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RepositoryLocked


@contextmanager
def hold(path: Path, *, exclusive: bool, wait: bool = False) -> Iterator[None]:
    """Hold the lock at `path`; raise RepositoryLocked at once if it is taken (unless `wait`)."""
    fd = _open_for_writing(path) if exclusive else _open_for_reading(path)
    if fd is None:  # a repository that cannot be written: nothing can prune it through this path
        yield
        return
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RepositoryLocked(
                f"{path.name} is locked by another process ({_holder(path)})",
                hint="Wait for it to finish, or stop it; a lock never outlives its process.",
                path=str(path),
            ) from None
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _description().encode(), 0)
        yield
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """Whether a process holds the lock at `path` exclusively now (asked without creating the
    file or writing anything, so it works on a read-only repository)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock this took, if it took one
    return False
def _open_for_writing(path: Path) -> int:
    """A read-write descriptor of the lock file, made if missing: an exclusive holder writes who
    it is into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _open_for_reading(path: Path) -> int | None:
    """A read-only descriptor of the lock file, made if missing; None when it is missing and the
    repository cannot be written."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as error:
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return None
        raise


def _description() -> str:
    return json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "since": int(time.time()),
        "command": " ".join(sys.argv[:3]),
    })


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    if not info:
        return "a reader"
    return f"pid {info.get('pid')} on {info.get('host')}: {info.get('command')}"
