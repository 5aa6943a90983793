"""The block cache of ranged reads (storage/cache.py), over a real local folder: the bytes are
those of the file whatever blocks a range spans, repeated reads cost no read of the storage, and
the cache never holds more than its capacity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cps.errors import MissingFile
from cps.repository.storage import RangeCache
from cps.repository.storage.local import LocalStorage


class CountedReads(LocalStorage):
    """A local folder that counts the ranged reads made of it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads = 0

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self.reads += 1
        return super().get_range(key, offset, length)


@pytest.fixture
def storage(tmp_path: Path) -> CountedReads:
    return CountedReads(tmp_path / "repo")


def test_ranges_across_blocks_are_the_bytes_of_the_file(storage: CountedReads) -> None:
    data = os.urandom(10_000)
    storage.put("packs/aa/p.pack", data)
    cache = RangeCache(storage, block=1024, capacity=1 << 20)
    for offset, length in ((0, 1), (1000, 100), (1023, 2), (2048, 1024), (9990, 50), (0, 10_000),
                           (10_000, 5), (12_000, 5), (5, 0)):
        assert cache.get_range("packs/aa/p.pack", offset, length) == data[offset:offset + length]


def test_a_block_read_once_is_not_read_again(storage: CountedReads) -> None:
    storage.put("packs/aa/p.pack", os.urandom(4096))
    cache = RangeCache(storage, block=1024, capacity=1 << 20)
    cache.get_range("packs/aa/p.pack", 100, 50)
    cache.get_range("packs/aa/p.pack", 900, 100)  # the same block
    assert storage.reads == 1
    cache.get_range("packs/aa/p.pack", 1000, 100)  # and the next one
    assert storage.reads == 2


def test_the_cache_keeps_the_blocks_read_last_within_its_capacity(storage: CountedReads) -> None:
    storage.put("packs/aa/p.pack", os.urandom(8192))
    cache = RangeCache(storage, block=1024, capacity=3 * 1024)
    for block in range(8):
        cache.get_range("packs/aa/p.pack", block * 1024, 1)
    assert cache._bytes <= 3 * 1024
    reads = storage.reads
    cache.get_range("packs/aa/p.pack", 7 * 1024, 1)  # among the last three
    assert storage.reads == reads
    cache.get_range("packs/aa/p.pack", 0, 1)  # long evicted
    assert storage.reads == reads + 1


def test_a_missing_file_is_missing_through_the_cache(storage: CountedReads) -> None:
    with pytest.raises(MissingFile):
        RangeCache(storage).get_range("packs/aa/none.pack", 0, 10)
