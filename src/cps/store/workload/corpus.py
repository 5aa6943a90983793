"""A folder of real messages for the workload to deliver: indexed once, read one file at a time.

Every regular, non-empty file under the folder whose name and folder names do not start with "." is
one message, delivered byte for byte as it is on disk. Files are not split: an mbox file is delivered
as one (odd, but harmless) message, so point the workload at one-message-per-file trees such as
maildir or .eml folders. Symbolic links are not followed.

Only the relative paths are kept in memory; a file's bytes are read when it is delivered. Files are
handed out in a shuffled order drawn from the caller's random generator, each once per pass, and a new
pass reshuffles, so a long run cycles through the whole corpus again and again.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from ...errors import UsageError


class Corpus:
    def __init__(self, root: Path, paths: list[str]) -> None:
        self.root = root
        self.paths = paths
        self._order: list[int] = []

    @classmethod
    def index(cls, root: Path) -> Corpus:
        """List the message files under `root`, in sorted order, so the index is the same on every
        machine whatever order the file system lists them in."""
        if not root.is_dir():
            raise UsageError(f"corpus {root} is not a folder")
        paths = sorted(_message_files(root))
        if not paths:
            raise UsageError(
                f"no message files under {root}",
                hint="Point --corpus at a folder holding one message per file, or leave it out "
                "to deliver generated mail.",
            )
        return cls(root, paths)

    def __len__(self) -> int:
        return len(self.paths)

    def next_message(self, rng: random.Random) -> tuple[bytes, str]:
        """The bytes of the next file in this pass's order, and its path relative to the root."""
        if not self._order:
            self._order = list(range(len(self.paths)))
            rng.shuffle(self._order)
        relative = self.paths[self._order.pop()]
        try:
            return (self.root / relative).read_bytes(), relative
        except OSError as exc:
            raise UsageError(
                f"cannot read corpus file {self.root / relative}: {exc.strerror or exc}",
                hint="The corpus changed while the workload ran; restore the file or restart.",
            ) from exc


def _message_files(root: Path) -> list[str]:
    found = []
    for folder, subfolders, files in os.walk(root, onerror=_raise):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            entry = os.path.join(folder, name)
            if os.path.isfile(entry) and not os.path.islink(entry) and os.path.getsize(entry):
                found.append(Path(entry).relative_to(root).as_posix())
    return found


def _raise(error: OSError) -> None:
    raise UsageError(f"cannot read corpus folder {error.filename}: {error.strerror or error}")
