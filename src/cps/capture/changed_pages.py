"""The pages written since a full backup, each counted once however often it was rewritten.

A restore writes each page of its log once (newest version first), so this count, not the bytes
of log captured, is what a restore from that full backup has to replay beyond the full backup
itself. One byte per page: 256 KiB for a 1 GiB database of 4 KiB pages.
"""

from __future__ import annotations

from collections.abc import Iterable


class ChangedPages:
    def __init__(self) -> None:
        self._marks = bytearray()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, page_numbers: Iterable[int]) -> None:
        marks = self._marks
        for number in page_numbers:
            if number >= len(marks):
                marks.extend(bytes(number + 1 - len(marks)))
            if not marks[number]:
                marks[number] = 1
                self._count += 1

    def absorb(self, other: ChangedPages) -> None:
        """Count the pages `other` counted as well (a full backup that failed gives its back)."""
        size = max(len(self._marks), len(other._marks))
        # Each byte is 0 or 1, so OR-ing the two arrays as integers ORs them byte by byte.
        union = int.from_bytes(self._marks, "little") | int.from_bytes(other._marks, "little")
        self._marks = bytearray(union.to_bytes(size, "little"))
        self._count = self._marks.count(1)
