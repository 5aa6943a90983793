"""File names (naming.py): format/parse round trips, `ls` order as log order, and foreign names
(temporary files, hand-made copies, other widths) ignored by parsers and by repository listings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cps.errors import UsageError
from cps.repository import Chain, FullBackup, FullRef, Repository, SegmentRef, WalPosition, naming
from cps.repository.crypto import sealing
from cps.repository.format import FLAG_COMPRESSED, encode_file

TXN = st.integers(0, 2**64 - 1)
MS = st.integers(0, 2**48 - 1)
CHAIN = st.integers(0, 2**32 - 1)


@given(chain=CHAIN, txn=TXN, taken=MS)
def test_full_names_round_trip(chain: int, txn: int, taken: int) -> None:
    ref = FullRef(chain, txn, taken)
    name = naming.format_full(ref)
    assert len(name) == 16 + 1 + 12 + len(".full")
    assert naming.parse_full(chain, name) == ref


@given(chain=CHAIN, first=TXN, last=TXN, first_time=MS, last_time=MS)
def test_segment_names_round_trip(chain: int, first: int, last: int, first_time: int, last_time: int) -> None:
    ref = SegmentRef(chain, first, last, first_time, last_time)
    name = naming.format_segment(ref)
    assert len(name) == 16 + 1 + 16 + 1 + 12 + 1 + 12 + len(".seg")
    assert naming.parse_segment(chain, name) == ref


@given(txns=st.lists(TXN, min_size=2, max_size=20, unique=True))
def test_names_sort_in_transaction_order(txns: list[int]) -> None:
    names = {naming.format_segment(SegmentRef(1, t, t, 0, 0)): t for t in txns}
    assert [names[n] for n in sorted(names)] == sorted(txns)
    fulls = {naming.format_full(FullRef(1, t, 0)): t for t in txns}
    assert [fulls[n] for n in sorted(fulls)] == sorted(txns)


@given(chain=CHAIN)
def test_chain_folders_round_trip(chain: int) -> None:
    folder = naming.chain_dir("db", chain)
    parent, _slash, name = folder.rpartition("/")
    assert parent == "databases/db/chains"
    assert naming.parse_chain_dir(name) == chain


@given(pack_id=st.binary(min_size=32, max_size=32))
def test_pack_keys_round_trip(pack_id: bytes) -> None:
    folder, _slash, name = naming.pack_key(pack_id).rpartition("/")
    assert folder == f"packs/{pack_id.hex()[:2]}"
    assert naming.parse_pack(name) == pack_id


def test_point_names_hold_the_txn_and_a_hash_of_the_name() -> None:
    name = naming.format_point(0x2B, "before upgrade")
    assert name == "000000000000002b-" + hashlib.sha256(b"before upgrade").hexdigest()[:16] + ".point"


FULL = "0000000000000001-01a208f552b2.full"
SEGMENT = "0000000000000002-000000000000000e-01a208f55487-01a208f55670.seg"
PACK = "e572302013488d104baaea853ca694abc9860783a1d9dd6246cf21d4608f0eac.pack"


def foreign_variants(name: str) -> list[str]:
    """Names near `name` that CPS never writes: temporary files, copies, other cases and widths."""
    stem, dot, suffix = name.partition(".")
    variants = [
        f".{name}.k2j3h4.tmp",  # what durable.atomic_write leaves after a crash
        name + ".tmp", name + "~", "copy of " + name, name.upper(), stem.upper() + dot + suffix,
        "0" + name, name[1:], stem + dot + suffix + "x", stem + ".bak", stem, "",
        name.replace("0", "g", 1), name.replace("-", "_"),
    ]
    return [v for v in variants if v != name]


@pytest.mark.parametrize("name", foreign_variants(FULL))
def test_foreign_full_names_are_rejected(name: str) -> None:
    assert naming.parse_full(1, name) is None


@pytest.mark.parametrize("name", foreign_variants(SEGMENT))
def test_foreign_segment_names_are_rejected(name: str) -> None:
    assert naming.parse_segment(1, name) is None


@pytest.mark.parametrize("name", foreign_variants(PACK))
def test_foreign_pack_names_are_rejected(name: str) -> None:
    assert naming.parse_pack(name) is None


@pytest.mark.parametrize("name", ["0000001", "000000001", "0000000G", "0000000A", "chain", ".00000001"])
def test_foreign_chain_folders_are_rejected(name: str) -> None:
    assert naming.parse_chain_dir(name) is None


def test_the_real_names_parse() -> None:
    assert naming.parse_full(1, FULL) == FullRef(1, 1, 0x01A208F552B2)
    assert naming.parse_segment(1, SEGMENT) == SegmentRef(1, 2, 14, 0x01A208F55487, 0x01A208F55670)
    assert naming.parse_pack(PACK) == bytes.fromhex(PACK[:64])


@pytest.mark.parametrize("db_id", ["mail01", "a", "A.b_c-d", "9" * 64])
def test_valid_database_ids(db_id: str) -> None:
    assert naming.check_db_id(db_id) == db_id


@pytest.mark.parametrize("db_id", ["", ".hidden", "-x", "a/b", "..", "../etc", "a b", "é", "9" * 65])
def test_invalid_database_ids_are_refused_before_any_path_is_built(db_id: str) -> None:
    with pytest.raises(UsageError, match="invalid database id") as caught:
        naming.database_dir(db_id)
    assert caught.value.hint


POSITION = WalPosition(0, 0, 0, 0, (0, 0))


def test_repository_listings_ignore_foreign_files(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo")
    repo.write_chain("db", Chain(1, 0, 1, "test"))
    ref = repo.write_full("db", FullBackup(1, 1, 5, 512, POSITION, b""))
    folder = repo.location / naming.chain_dir("db", 1)
    real = (folder / "fulls" / naming.format_full(ref)).read_bytes()
    for name in foreign_variants(naming.format_full(ref)):
        if name and "/" not in name:
            (folder / "fulls" / name).write_bytes(real)
    (folder / "segments").mkdir()
    (folder / "segments" / f".{SEGMENT}.x1y2z3.tmp").write_bytes(b"partial")
    (repo.location / naming.database_dir("db") / "chains" / "notes").mkdir()
    (repo.location / naming.database_dir("db") / "chains" / "00000002").mkdir()  # no chain file
    assert repo.fulls("db", 1) == [ref]
    assert repo.segments("db", 1) == []
    assert [c.chain for c in repo.chains("db")] == [1]


def test_points_listing_reads_only_point_files(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo")
    points = repo.location / naming.database_dir("db") / "points"
    points.mkdir(parents=True)
    (points / ".0000000000000001-0000000000000000.point.a1b2c3.tmp").write_bytes(b"partial")
    (points / "README").write_text("not a point")
    stray = b"".join(encode_file("point", sealing(FLAG_COMPRESSED, None), [b"{}"]))
    (points / "0000000000000001-0000000000000000.point.bak").write_bytes(stray)
    assert repo.points("db") == ([], [])
