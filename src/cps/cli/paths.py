"""Files a command is to create, checked when the command line is read: a restore that would end
in "no such folder" should say so before it reads a gigabyte of backups, not after."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import click

from ..errors import FileSystemError


class NewFile(click.Path):
    """The path of a file the command creates: its folder must exist and be writable."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        problem = _write_problem(Path(os.fsdecode(path)).parent)
        if problem is not None:
            refused = OSError(problem, os.strerror(problem), str(path))
            raise FileSystemError.from_os_error(refused, kept="Nothing was written.")
        return path


def _write_problem(folder: Path) -> int | None:
    """The errno that creating a file in `folder` would fail with, or None."""
    try:
        mode = os.stat(folder).st_mode
    except OSError as error:
        return error.errno
    if not stat.S_ISDIR(mode):
        return errno.ENOTDIR
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return errno.EROFS
    if not os.access(folder, os.W_OK):
        return errno.EACCES
    return None
