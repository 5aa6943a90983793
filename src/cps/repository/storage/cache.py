"""`RangeCache`: ranged reads of immutable files kept in memory, in blocks, within a byte limit.

Granular recovery reads pages one at a time as SQLite asks for them (granular/images.py); from a
bucket each would be a request. SQLite reads a b-tree's neighbouring pages together, and a full
backup's pack holds them in page order, so reading a block around each page and keeping the
last blocks read turns most of those requests into memory reads. Only for files that never
change under their name: packs, named by their content.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .base import Storage

BLOCK_BYTES = 256 << 10
CACHE_BYTES = 64 << 20


class RangeCache:
    def __init__(self, storage: Storage, *, block: int = BLOCK_BYTES,
                 capacity: int = CACHE_BYTES) -> None:
        self.storage = storage
        self.block = block
        self.capacity = capacity
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """As Storage.get_range."""
        if length <= 0:
            return b""
        first, last = offset // self.block, (offset + length - 1) // self.block
        data = b"".join(self._read(key, number) for number in range(first, last + 1))
        start = offset - first * self.block
        return data[start : start + length]

    def _read(self, key: str, number: int) -> bytes:
        with self._lock:
            found = self._blocks.get((key, number))
            if found is not None:
                self._blocks.move_to_end((key, number))
                return found
        data = self.storage.get_range(key, number * self.block, self.block)
        with self._lock:
            if (key, number) not in self._blocks:
                self._blocks[key, number] = data
                self._bytes += len(data)
            while self._bytes > self.capacity:
                _evicted, old = self._blocks.popitem(last=False)
                self._bytes -= len(old)
        return data
