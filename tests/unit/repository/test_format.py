"""The container every repository file uses (format.py): round trips, and every kind of damage to a
file detected before any record of it is used."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cps.errors import CorruptFile, RepositoryError, UnsupportedFormat
from cps.repository import Repository
from cps.repository.crypto import MasterKey, sealing
from cps.repository.format import (
    FLAG_COMPRESSED,
    FLAG_ENCRYPTED,
    FOOTER,
    HEADER,
    KIND_MAGIC,
    MAX_FORMAT_VERSION,
    MIN_FORMAT_VERSION,
    RECORD_LENGTH,
    Sealing,
    encode_file,
    encode_sealed_file,
    parse_file,
    read_file,
)

KEY = MasterKey(bytes(range(32)), bytes(range(32, 64)))
PATH = "example"  # where a file is, as messages name it
VERSION_BYTES = range(8, 10)  # offset and size of the version field in the header


def sealing_for(flags: int) -> Sealing:
    return sealing(flags, KEY if flags & FLAG_ENCRYPTED else None)


def encode(kind: str, records: list[bytes], flags: int = FLAG_COMPRESSED) -> bytes:
    return b"".join(encode_file(kind, sealing_for(flags), records))


def rewrite_header(data: bytes, *, version: int | None = None, magic: bytes | None = None) -> bytes:
    """`data` with header fields replaced and its checksum made right again (a well-formed file)."""
    old_magic, old_version, flags, reserved = HEADER.unpack_from(data)
    header = HEADER.pack(magic or old_magic, old_version if version is None else version, flags, reserved)
    return reseal(header + data[HEADER.size :])


def reseal(data: bytes) -> bytes:
    body = data[:-32]
    return body + hashlib.sha256(body).digest()


def outcome(data: bytes, kind: str = "segment") -> str:
    """What a reader makes of `data`: the error it raises, or "read" when it yields every record."""
    try:
        checked = parse_file(PATH, data, kind)
        list(checked.records(sealing_for(checked.flags)))
    except RepositoryError as error:
        return type(error).__name__
    return "read"


SMALL_FILE = encode("segment", [b"first record", b"", b"third"])


@settings(deadline=None)
@given(kind=st.sampled_from(sorted(KIND_MAGIC)),
       records=st.lists(st.binary(max_size=300), max_size=8),
       compressed=st.booleans(), encrypted=st.booleans())
def test_any_records_round_trip(kind: str, records: list[bytes], compressed: bool, encrypted: bool) -> None:
    flags = (FLAG_COMPRESSED if compressed else 0) | (FLAG_ENCRYPTED if encrypted else 0)
    data = encode(kind, records, flags)
    checked = parse_file(PATH, data, kind)
    assert checked.flags == flags
    assert list(checked.records(sealing_for(flags))) == records
    count, last, _checksum = FOOTER.unpack_from(data, len(data) - FOOTER.size)
    assert count == len(records)
    if records:
        (length,) = RECORD_LENGTH.unpack_from(data, last)
        assert last + RECORD_LENGTH.size + length == len(data) - FOOTER.size
    else:
        assert last == 0


def test_header_fields_are_where_the_format_says() -> None:
    data = encode("full", [b"x"], FLAG_COMPRESSED | FLAG_ENCRYPTED)
    assert data[:8] == b"CPSFULL\x00"
    assert data[8:10] == (3).to_bytes(2, "little")
    assert data[10:12] == (3).to_bytes(2, "little")
    assert data[12:16] == bytes(4)


def test_checksum_is_sha256_of_all_bytes_before_it() -> None:
    assert hashlib.sha256(SMALL_FILE[:-32]).digest() == SMALL_FILE[-32:]


def test_every_bit_flip_is_detected() -> None:
    for bit in range(len(SMALL_FILE) * 8):
        damaged = bytearray(SMALL_FILE)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert outcome(bytes(damaged)) in {"CorruptFile", "UnsupportedFormat"}, f"bit {bit}"


def test_every_bit_flip_outside_the_version_is_a_corrupt_file() -> None:
    for bit in range(len(SMALL_FILE) * 8):
        if bit // 8 in VERSION_BYTES:
            continue
        damaged = bytearray(SMALL_FILE)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert outcome(bytes(damaged)) == "CorruptFile", f"bit {bit}"


def test_a_bit_flip_in_the_version_is_a_corrupt_file() -> None:
    for bit in range(VERSION_BYTES.start * 8, VERSION_BYTES.stop * 8):
        damaged = bytearray(SMALL_FILE)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert outcome(bytes(damaged)) == "CorruptFile", f"bit {bit}"


def test_truncation_at_every_length_is_a_corrupt_file() -> None:
    for length in range(len(SMALL_FILE)):
        assert outcome(SMALL_FILE[:length]) == "CorruptFile", f"cut to {length} bytes"


def test_bytes_appended_are_a_corrupt_file() -> None:
    assert outcome(SMALL_FILE + b"\0") == "CorruptFile"
    assert outcome(SMALL_FILE + SMALL_FILE) == "CorruptFile"


def test_a_file_of_another_kind_is_refused() -> None:
    with pytest.raises(CorruptFile, match="is not a full file") as caught:
        parse_file(PATH, SMALL_FILE, "full")
    assert caught.value.path == PATH


def test_unknown_magic_is_refused() -> None:
    for magic in (b"SQLite f", b"\0" * 8, b"CPSSEGM\x01"):
        assert outcome(rewrite_header(SMALL_FILE, magic=magic)) == "CorruptFile"


UNREADABLE_VERSIONS = sorted({0, MIN_FORMAT_VERSION - 1, MAX_FORMAT_VERSION + 1, 0xFFFF}
                             - set(range(MIN_FORMAT_VERSION, MAX_FORMAT_VERSION + 1)))


@pytest.mark.parametrize("version", UNREADABLE_VERSIONS)
def test_version_outside_the_readable_range_is_unsupported(version: int) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        parse_file(PATH, rewrite_header(SMALL_FILE, version=version), "segment")
    assert f"format version {version}" in caught.value.message
    assert f"{MIN_FORMAT_VERSION} to {MAX_FORMAT_VERSION}" in caught.value.message
    assert caught.value.hint and "CPS release" in caught.value.hint
    assert caught.value.exit_status == 11


def test_every_version_inside_the_range_is_read() -> None:
    for version in range(MIN_FORMAT_VERSION, MAX_FORMAT_VERSION + 1):
        assert outcome(rewrite_header(SMALL_FILE, version=version)) == "read"


def with_footer(data: bytes, count: int) -> bytes:
    _count, last, _checksum = FOOTER.unpack_from(data, len(data) - FOOTER.size)
    return reseal(data[: -FOOTER.size] + struct.pack("<IQ", count, last) + bytes(32))


def test_a_footer_counting_fewer_records_than_there_are_is_refused() -> None:
    with pytest.raises(CorruptFile, match="bytes between its records and footer"):
        parse_file(PATH, with_footer(SMALL_FILE, 2), "segment")


def test_a_footer_counting_more_records_than_there_are_is_refused() -> None:
    with pytest.raises(CorruptFile, match="fewer records than its footer says"):
        parse_file(PATH, with_footer(SMALL_FILE, 4), "segment")


def test_a_record_running_past_the_footer_is_refused() -> None:
    damaged = bytearray(SMALL_FILE)
    RECORD_LENGTH.pack_into(damaged, HEADER.size, len(SMALL_FILE))
    with pytest.raises(CorruptFile, match="record running past its end"):
        parse_file(PATH, reseal(bytes(damaged)), "segment")


def test_a_record_that_does_not_open_names_the_file() -> None:
    # Well-formed container, but the stored bytes are no zstd frame.
    data = b"".join(encode_sealed_file("segment", FLAG_COMPRESSED, [[b"raw"]]))
    checked = parse_file(PATH, data, "segment")
    with pytest.raises(CorruptFile, match="does not decompress") as caught:
        checked.record(0, sealing_for(FLAG_COMPRESSED))
    assert caught.value.path == PATH


def test_read_file_reads_and_checks_a_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "x.seg"
    path.write_bytes(SMALL_FILE)
    assert list(read_file(path, "segment").records(sealing_for(FLAG_COMPRESSED))) == [
        b"first record", b"", b"third"]
    path.write_bytes(SMALL_FILE[:-1])
    with pytest.raises(CorruptFile):
        read_file(path, "segment")


# Packs: the same container, read through their index record.


PACK_PAGE_SIZE = 24  # small pages keep the loops over every bit short


def pack_repository(tmp_path: Path) -> tuple[Repository, list[bytes], Path]:
    repo = Repository.init(tmp_path / "repo")
    pages = [bytes([n]) * PACK_PAGE_SIZE for n in (1, 2)]
    writer = repo.page_writer()
    for page in pages:
        writer.add(repo.page_id(page), page)
    writer.flush()
    [pack] = (tmp_path / "repo" / "packs").glob("*/*.pack")
    return repo, pages, pack


def pack_outcome(repo: Repository, pages: list[bytes]) -> str:
    ids = [repo.page_id(page) for page in pages]
    read: list[bytes | None] = [None] * len(ids)
    try:
        index = repo.page_index()
        rows = index.require(b"".join(ids), "the test")
        for places, found in repo.read_pages(rows, index, "the test", PACK_PAGE_SIZE):
            for place, page in zip(places.tolist(), found, strict=True):
                read[place] = page
    except RepositoryError as error:
        return type(error).__name__
    except Exception as error:  # a crash, not a report
        return f"crash: {type(error).__name__}"
    return "read" if read == pages else "wrong pages"


def test_a_pack_is_named_by_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    repo, pages, pack = pack_repository(tmp_path)
    assert pack.name == hashlib.sha256(pack.read_bytes()).hexdigest() + ".pack"
    assert pack.parent.name == pack.name[:2]
    assert pack_outcome(repo, pages) == "read"


def test_a_bit_flip_in_a_page_record_of_a_pack_is_a_corrupt_file(tmp_path: Path) -> None:
    repo, pages, pack = pack_repository(tmp_path)
    data = bytearray(pack.read_bytes())
    data[HEADER.size + RECORD_LENGTH.size + 2] ^= 1
    pack.write_bytes(bytes(data))
    assert pack_outcome(repo, pages) == "CorruptFile"


def test_every_bit_flip_of_a_pack_is_a_corrupt_file(tmp_path: Path) -> None:
    repo, pages, pack = pack_repository(tmp_path)
    original = pack.read_bytes()
    for bit in range(len(original) * 8):
        if bit // 8 in VERSION_BYTES:
            continue
        damaged = bytearray(original)
        damaged[bit // 8] ^= 1 << (bit % 8)
        pack.write_bytes(bytes(damaged))
        assert pack_outcome(repo, pages) == "CorruptFile", f"bit {bit}"


def test_truncation_of_a_pack_at_every_length_is_a_corrupt_file(tmp_path: Path) -> None:
    repo, pages, pack = pack_repository(tmp_path)
    original = pack.read_bytes()
    for length in range(len(original)):
        pack.write_bytes(original[:length])
        assert pack_outcome(repo, pages) == "CorruptFile", f"cut to {length} bytes"
