"""naming.key_kind: which repository file a key names, as `cps repo copy` decides what to copy."""

from __future__ import annotations

import pytest

from cps.repository.model import FullRef, SegmentRef
from cps.repository.naming import (
    chain_dir,
    database_dir,
    drills_dir,
    format_drill,
    format_full,
    format_point,
    format_pruned,
    format_segment,
    key_kind,
    pack_key,
)

PACK_ID = bytes(range(32))
CHAIN = chain_dir("mail01", 1)


@pytest.mark.parametrize("key, kind", [
    ("config", "config"),
    ("key", "key"),
    (pack_key(PACK_ID), "pack"),
    (f"{database_dir('mail01')}/database", "database"),
    (f"{database_dir('mail01')}/status", "status"),
    (f"{database_dir('mail01')}/points/{format_point(43, 'before upgrade')}", "point"),
    (f"{database_dir('mail01')}/pruned/{format_pruned(1795446624190)}", "pruned"),
    (f"{drills_dir('mail01')}/{format_drill(1795446624190)}", "drill"),
    (f"{CHAIN}/chain", "chain"),
    (f"{CHAIN}/fulls/{format_full(FullRef(1, 1, 1795446624190))}", "full"),
    (f"{CHAIN}/segments/{format_segment(SegmentRef(1, 2, 14, 1795446624190, 1795446624300))}",
     "segment"),
])
def test_every_file_the_names_build_has_its_kind(key: str, kind: str) -> None:
    assert key_kind(key) == kind


@pytest.mark.parametrize("key", [
    "locks/repository",
    "locks/protect-mail01",
    f"{database_dir('mail01')}/requests/{'0' * 32}.request",
    f"{CHAIN}/segments/.0000000000000002.seg.abcdef.tmp",
    f"packs/ff/{PACK_ID.hex()}.pack",  # in the folder of another first byte
    f"{pack_key(PACK_ID)}.tmp",
    "config.bak",
    "databases/mail01",
    f"{CHAIN}/fulls/notes.txt",
])
def test_anything_else_is_no_repository_file(key: str) -> None:
    assert key_kind(key) is None
