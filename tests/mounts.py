"""A folder seen read-only, in a way that stops root too: a read-only bind mount."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only_view(folder: Path, view: Path) -> Iterator[Path]:
    """`folder` mounted read-only at `view` (made here) while inside; the test is skipped, saying
    why, where this system does not let it mount."""
    if shutil.which("mount") is None:
        pytest.skip("a read-only view needs the mount command, which is not installed")
    view.mkdir()
    _mount_or_skip("--bind", str(folder), str(view))
    try:
        _mount_or_skip("-o", "remount,ro,bind", str(view))
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True, capture_output=True)


def _mount_or_skip(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a read-only view needs bind mounts, which this system refuses: "
                    f"mount {' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (such as "16m") mounted at `folder` (made here) while inside: a disk that
    fills up for real. The test is skipped, saying why, where this system does not let it mount."""
    if shutil.which("mount") is None:
        pytest.skip("a small disk needs the mount command, which is not installed")
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a small disk needs a tmpfs mount, which this system refuses: "
                    f"{done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True, capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file into `folder` until its disk is full; the file, to delete to free the disk."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError:
            pass
    with filler.open("ab", buffering=0) as handle:  # the last bytes a partial chunk would take
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler
