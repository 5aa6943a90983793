"""Locating and reading pages in packs: the index as arrays, searched by page id, against the packs
written by `PackWriter` and the index decoder of codec.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from cps.errors import CorruptFile, MissingFile
from cps.repository import Repository
from cps.repository.codec import encode_pack_index
from cps.repository.format import FLAG_COMPRESSED, encode_sealed_file
from cps.repository.naming import pack_key
from cps.repository.packs import pack_files, read_pack_entries, read_pack_index
from cps.repository.storage.local import LocalStorage

PAGE_SIZE = 64
PREFIX = b"\x07" * 8  # ids sharing their first 8 bytes: the search key


def page(n: int) -> bytes:
    return n.to_bytes(4, "little") * (PAGE_SIZE // 4)


def awkward_id(n: int) -> bytes:
    """Ids that differ only after the search key, and end in zero bytes (which numpy drops when
    it turns a fixed-width `S32` value into `bytes`)."""
    return PREFIX + n.to_bytes(2, "big") + bytes(22)


def write_packs(repo: Repository, packs: list[list[tuple[bytes, bytes]]]) -> list[str]:
    """The key of each pack written."""
    written = []
    for pages in packs:
        writer = repo.page_writer()
        for page_id, data in pages:
            writer.add(page_id, data)
        [(_id, location), *_] = writer.flush()
        written.append(location.pack)
    return written


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(tmp_path / "repo")


def read_all(repo: Repository, ids: list[bytes]) -> list[bytes | None]:
    index = repo.page_index()
    rows = index.require(b"".join(ids), "the test")
    found: list[bytes | None] = [None] * len(ids)
    for places, pages in repo.read_pages(rows, index, "the test", PAGE_SIZE):
        assert list(places) == sorted(places)
        for place, data in zip(places.tolist(), pages, strict=True):
            assert found[place] is None, "a place read twice"
            found[place] = data
    return found


def test_the_array_index_of_a_pack_is_what_the_codec_decodes(repo: Repository) -> None:
    [key] = write_packs(repo, [[(awkward_id(n), page(n)) for n in range(5)]])
    [pack] = pack_files(repo.storage)
    assert pack.key == key
    entries, flags = read_pack_entries(repo.storage, pack, repo.sealing_for)
    decoded = read_pack_index(repo.storage, pack, repo.sealing_for)
    assert flags == FLAG_COMPRESSED
    ids = entries["id"].tobytes()  # whole: as a `bytes` each, an `S32` value loses its zero tail
    assert list(zip([ids[at : at + 32] for at in range(0, len(ids), 32)],
                    entries["offset"].tolist(), entries["length"].tolist(), strict=True)) == decoded
    assert [page_id for page_id, _offset, _length in decoded] == [awkward_id(n) for n in range(5)]


def test_ids_sharing_their_first_bytes_are_each_found_in_their_own_pack(repo: Repository) -> None:
    write_packs(repo, [[(awkward_id(n), page(n)) for n in range(0, 40, 2)],
                       [(awkward_id(n), page(n)) for n in range(1, 40, 2)]])
    ids = [awkward_id(n) for n in (39, 0, 17, 17, 2)]
    assert read_all(repo, ids) == [page(39), page(0), page(17), page(17), page(2)]


def test_an_id_in_no_pack_is_not_located(repo: Repository) -> None:
    write_packs(repo, [[(awkward_id(n), page(n)) for n in range(3)]])
    index = repo.page_index()
    absent = [awkward_id(3), bytes(32), b"\xff" * 32, PREFIX + b"\x00\x01" + bytes(21) + b"\x01"]
    wanted = np.frombuffer(b"".join([awkward_id(1), *absent]), "S32")
    assert index.locate(wanted).tolist()[1:] == [-1] * len(absent)
    with pytest.raises(MissingFile, match=r"page 0707070707070707, needed by the test"):
        index.require(absent[0], "the test")


def test_a_page_in_two_packs_is_read_from_the_pack_of_the_page_before_it(repo: Repository) -> None:
    first, second = write_packs(repo, [[(awkward_id(1), page(1)), (awkward_id(2), page(2))],
                                       [(awkward_id(1), page(1)), (awkward_id(3), page(3))]])
    index = repo.page_index()
    ids = [awkward_id(n) for n in (3, 1, 2, 1)]
    rows = index.require(b"".join(ids), "the test")
    assert [index.packs[n].key for n in index.pack_numbers[rows]] == [second, second, first, first]
    assert read_all(repo, ids) == [page(n) for n in (3, 1, 2, 1)]


def test_a_located_page_is_read_alone_and_checked_against_its_address(repo: Repository) -> None:
    pages = [page(n) for n in range(5)]
    ids = [repo.page_id(data) for data in pages]
    first, second = write_packs(repo, [list(zip(ids[:3], pages[:3], strict=True)),
                                       list(zip(ids[3:], pages[3:], strict=True))])
    index = repo.page_index()
    wanted = (4, 0, 2)
    rows = index.locate(np.frombuffer(b"".join(ids[n] for n in wanted), "S32")).tolist()
    located = dict(zip(wanted, map(index.location, rows), strict=True))
    assert [located[n].pack for n in wanted] == [second, first, first]
    assert [repo.read_page(ids[n], located[n]) for n in wanted] == [pages[n] for n in wanted]
    with pytest.raises(CorruptFile, match="does not hold the page its index names"):
        repo.read_page(ids[1], located[0])


def test_a_pack_whose_index_cannot_be_read_is_set_aside_and_named(repo: Repository) -> None:
    damaged, intact = write_packs(repo, [[(awkward_id(1), page(1))], [(awkward_id(2), page(2))]])
    damaged_file = repo.location / damaged
    damaged_file.write_bytes(damaged_file.read_bytes()[:-1])
    index = repo.page_index()
    assert list(index.damaged) == [damaged] and pack_files(repo.storage) == index.packs
    assert read_all(repo, [awkward_id(2)]) == [page(2)]
    [row] = index.locate(np.frombuffer(awkward_id(2), "S32")).tolist()
    assert index.location(row).pack == intact
    with pytest.raises(CorruptFile) as raised:
        index.require(awkward_id(1), "the test")
    assert str(damaged_file) in raised.value.message


def test_a_page_of_another_size_is_damage(repo: Repository) -> None:
    [pack] = write_packs(repo, [[(awkward_id(1), page(1)), (awkward_id(2), page(2)[:-4])]])
    with pytest.raises(CorruptFile, match=f"{pack} holds a page of {PAGE_SIZE - 4} bytes"):
        read_all(repo, [awkward_id(1), awkward_id(2)])


def write_pack_by_hand(repo: Repository, records: list[tuple[bytes, bytes]],
                       point_past_the_end: bool = False) -> str:
    """A pack of stored records as given, with a right checksum: what a faulty writer could leave."""
    sealing = repo.sealing_for(FLAG_COMPRESSED)
    entries, offset = [], 16 + 4
    for page_id, stored in records:
        entries.append((page_id, (1 << 20) if point_past_the_end else offset, len(stored)))
        offset += len(stored) + 4
    index = sealing.seal(encode_pack_index(entries))
    data = b"".join(encode_sealed_file("pack", sealing.flags,
                                       [[stored] for stored in [*(s for _id, s in records), index]]))
    key = pack_key(hashlib.sha256(data).digest())
    path = repo.location / key
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return key


def test_a_checksummed_pack_whose_index_points_past_its_end_is_set_aside(repo: Repository) -> None:
    stored = repo.sealing_for(FLAG_COMPRESSED).seal(page(1))
    path = write_pack_by_hand(repo, [(awkward_id(1), stored)], point_past_the_end=True)
    assert "pointing past its end" in repo.page_index().damaged[path]


def test_a_page_that_does_not_decompress_is_damage_naming_the_pack(repo: Repository) -> None:
    stored = [repo.sealing_for(FLAG_COMPRESSED).seal(page(n)) for n in range(3)]
    path = write_pack_by_hand(repo, [(awkward_id(0), stored[0]), (awkward_id(1), stored[1][:-3]),
                                     (awkward_id(2), stored[2])])
    assert read_all(repo, [awkward_id(2), awkward_id(0)]) == [page(2), page(0)]
    with pytest.raises(CorruptFile, match="does not decompress") as raised:
        read_all(repo, [awkward_id(n) for n in range(3)])
    assert path in raised.value.message


class CountingStorage(LocalStorage):
    """The repository's folder, counting the ranged reads made of it; `remote` as asked."""

    def __init__(self, root: Path, *, remote: bool) -> None:
        super().__init__(root)
        self.remote = remote
        self.ranges: list[tuple[int, int]] = []

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self.ranges.append((offset, length))
        return super().get_range(key, offset, length)


@pytest.mark.parametrize(("pages", "remote", "reads"), [
    (10, False, 2),      # header, then a tail holding the footer and the whole index record
    (3_000, False, 3),   # an index of 132 KB: the rest of it in one more read
    (3_000, True, 2),    # from a bucket the tail read is larger, and holds it
    (8_000, True, 3),
])
def test_an_index_record_is_read_in_at_most_three_requests(
        repo: Repository, pages: int, remote: bool, reads: int) -> None:
    write_packs(repo, [[(hashlib.sha256(b"%d" % n).digest(), page(n)) for n in range(pages)]])
    storage = CountingStorage(repo.location, remote=remote)
    [pack] = pack_files(storage)
    entries, _flags = read_pack_entries(storage, pack, repo.sealing_for)
    assert len(storage.ranges) == reads
    assert sorted(entries["id"].tobytes()[at : at + 32] for at in range(0, pages * 32, 32)) == sorted(
        hashlib.sha256(b"%d" % n).digest() for n in range(pages))
    assert read_pack_index(repo.storage, pack, repo.sealing_for) == [
        (entry["id"].tobytes().ljust(32, b"\0"), int(entry["offset"]), int(entry["length"]))
        for entry in entries]
