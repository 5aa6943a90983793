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
