"""The standby record beside a standby copy: written whole, read back exactly, damage refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cps.errors import CorruptFile
from cps.repository.standby_record import (
    APPLYING,
    StandbyRecord,
    read_record,
    record_path,
    write_record,
)


def record(**changes: object) -> StandbyRecord:
    base = StandbyRecord("mail", "/backup/cps", 600_000, 1_700_000_000_000, APPLYING, chain=2,
                         txn=41, txn_time=1_700_000_001_000, db_pages=300, page_size=4096,
                         replayed_at=1_700_000_002_000, repository_txn=45, dirty_through=44,
                         seeds=2, seed_reason="chain 2 started: the WAL was reset")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    copy = tmp_path / "standby.db"
    write_record(copy, record())
    assert record_path(copy) == tmp_path / "standby.db.standby"
    assert read_record(copy) == record()
    write_record(copy, record(state="promoted", promoted_at=1_700_000_003_000))
    assert read_record(copy).promoted_at == 1_700_000_003_000


def test_an_unknown_state_is_neither_written_nor_read(tmp_path: Path) -> None:
    copy = tmp_path / "standby.db"
    with pytest.raises(ValueError):
        write_record(copy, record(state="resting"))
    assert not record_path(copy).exists()


@pytest.mark.parametrize("offset", [0, 20, -40, -1])
def test_a_damaged_record_is_refused_with_its_path(tmp_path: Path, offset: int) -> None:
    copy = tmp_path / "standby.db"
    write_record(copy, record())
    data = bytearray(record_path(copy).read_bytes())
    data[offset] ^= 0x01
    record_path(copy).write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match="standby.db.standby"):
        read_record(copy)


def test_a_missing_record_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_record(tmp_path / "nothing.db")
