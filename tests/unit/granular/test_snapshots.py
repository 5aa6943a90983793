"""The cache of restored points: what is an entry, least recently used first out, leftovers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cps.errors import UsageError
from cps.granular import SnapshotCache, default_cache_root


def entry(root: Path, name: str, used: float) -> Path:
    path = root / "repo1" / "mail" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").write_bytes(b"x")
    path.with_suffix(".json").write_text("{}")
    os.utime(path, (used, used))
    return path


def test_the_least_recently_used_points_go_first(tmp_path: Path) -> None:
    now = time.time()
    paths = [entry(tmp_path, f"{txn:016x}.db", now - 100 + txn) for txn in range(5)]
    cache = SnapshotCache(tmp_path, keep=2)
    assert cache.entries() == [paths[4], paths[3], paths[2], paths[1], paths[0]]
    removed = cache.evict(keep_also=paths[0])
    assert removed == [paths[2], paths[1]]
    left = {p.name for p in (tmp_path / "repo1" / "mail").iterdir()}
    assert left == {f"{p.stem}{suffix}" for p in (paths[0], paths[3], paths[4])
                    for suffix in (".db", ".db-wal", ".db-shm", ".json")}


def test_leftovers_of_dead_processes_are_removed_when_stale(tmp_path: Path) -> None:
    now = time.time()
    fresh = entry(tmp_path, ".restoring-now.db", now)
    stale = entry(tmp_path, ".abandoned.db.partial", now - 7200)
    cache = SnapshotCache(tmp_path, keep=1)
    assert cache.entries() == []  # neither is a cache entry
    cache.evict()
    assert fresh.exists() and not stale.exists()


def test_cache_root_and_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPS_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_root() == tmp_path / "c"
    monkeypatch.delenv("CPS_CACHE_DIR")
    assert default_cache_root() == Path.home() / ".cache" / "cps"
    with pytest.raises(UsageError):
        SnapshotCache(tmp_path, keep=0)
