"""Encryption, the key file and page ids (crypto.py) on real repositories: the passphrase guards
everything, the key file holds no key in the clear, and sealed records hide and protect content."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cps.errors import CorruptFile, MissingFile, UsageError, WrongPassphrase
from cps.repository import (
    Chain,
    DatabaseInfo,
    RecoveryPoint,
    Repository,
    Segment,
    SegmentRef,
    Transaction,
    WalPosition,
)
from cps.repository.crypto import (
    NONCE_SIZE,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    MasterKey,
    compress,
    open_key_record,
    sealing,
)
from cps.repository.format import FLAG_COMPRESSED, FLAG_ENCRYPTED, read_file
from tests.segments import built

PASSPHRASE = "correct horse battery staple"
POSITION = WalPosition(1, 2, 3, 4, (5, 6))
SECRET = b"SECRET-PAGE-CONTENT!"
PAGE = SECRET * (512 // len(SECRET)) + bytes(512 % len(SECRET))
POINT_NAME = "before the secret upgrade"
SOURCE = "/srv/secret/location/mail.db"


def fill(repo: Repository) -> SegmentRef:
    """One database, chain, segment (carrying SECRET) and recovery point."""
    repo.add_database(DatabaseInfo("db", SOURCE, 512, 1))
    repo.write_chain("db", Chain(1, 1, 1, "first protection of this database"))
    segment = Segment(1, 512, POSITION, POSITION, (Transaction(2, 10, 1, ((1, PAGE),)),))
    ref = repo.write_segment("db", built(segment))
    repo.write_point("db", RecoveryPoint(POINT_NAME, 1, 2, 11, False))
    return ref


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    repo = Repository.init(tmp_path_factory.mktemp("enc") / "repo", passphrase=PASSPHRASE)
    fill(repo)
    yield repo


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_right_passphrase_opens_and_reads(encrypted: Repository) -> None:
    reopened = Repository.open(encrypted.location, passphrase=PASSPHRASE)
    assert reopened.key == encrypted.key
    [ref] = reopened.segments("db", 1)
    assert reopened.read_segment("db", ref).transactions[0].pages == ((1, PAGE),)
    assert [p.name for p in reopened.points("db")[0]] == [POINT_NAME]


def test_a_wrong_passphrase_is_refused_and_nothing_is_read_or_changed(encrypted: Repository) -> None:
    before = snapshot(encrypted.location)
    with pytest.raises(WrongPassphrase, match="wrong passphrase") as caught:
        Repository.open(encrypted.location, passphrase="correct horse battery stapler")
    assert caught.value.exit_status == 12
    assert caught.value.hint and "nothing was read or changed" in caught.value.hint
    assert snapshot(encrypted.location) == before


def test_the_key_record_never_yields_a_key_for_a_wrong_passphrase(encrypted: Repository) -> None:
    record = read_file(encrypted.location / "key", "key").record(0, sealing(0, None))
    for wrong in ("", PASSPHRASE[:-1]):
        with pytest.raises(WrongPassphrase):
            open_key_record(record, wrong)
    assert open_key_record(record, PASSPHRASE) == encrypted.key


def test_an_encrypted_repository_needs_the_passphrase_and_says_how_to_give_it(encrypted: Repository) -> None:
    with pytest.raises(WrongPassphrase, match="encrypted") as caught:
        Repository.open(encrypted.location)
    assert caught.value.hint is not None
    assert "--passphrase-file" in caught.value.hint and "CPS_PASSPHRASE" in caught.value.hint


def test_config_says_encrypted_without_the_passphrase(encrypted: Repository) -> None:
    assert Repository.read_config(encrypted.location)["encrypted"] is True


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="passphrase is empty"):
        Repository.init(tmp_path / "repo", passphrase="")


def test_no_file_holds_the_master_key_in_the_clear(encrypted: Repository) -> None:
    assert encrypted.key is not None
    master = encrypted.key.encryption + encrypted.key.identification
    forms = [master, master.hex().encode(), base64.b64encode(master)]
    for part in (encrypted.key.encryption, encrypted.key.identification):
        forms += [part, part.hex().encode(), base64.b64encode(part)]
    for name, data in snapshot(encrypted.location).items():
        for form in forms:
            assert form not in data, f"{name} holds the master key"


def test_the_key_file_records_its_scrypt_parameters(encrypted: Repository) -> None:
    checked = read_file(encrypted.location / "key", "key")
    assert checked.flags == 0
    fields = json.loads(checked.record(0, sealing(0, None)))
    assert fields["kdf"] == "scrypt"
    assert (fields["n"], fields["r"], fields["p"]) == (SCRYPT_N, SCRYPT_R, SCRYPT_P)
    assert len(bytes.fromhex(fields["salt"])) == 16
    assert len(bytes.fromhex(fields["sealed_key"])) == NONCE_SIZE + 64 + 16


def test_two_repositories_with_one_passphrase_have_different_keys(tmp_path: Path,
                                                                    encrypted: Repository) -> None:
    other = Repository.init(tmp_path / "other", passphrase=PASSPHRASE)
    assert other.key != encrypted.key


def test_encrypted_files_hide_pages_names_and_paths(encrypted: Repository) -> None:
    checked = 0
    for name, data in snapshot(encrypted.location).items():
        for secret in (SECRET, POINT_NAME.encode(), SOURCE.encode(), b"first protection"):
            assert secret not in data, f"{name} shows {secret!r}"
        kind = next((k for suffix, k in KINDS.items() if name.endswith(suffix)), None)
        if kind is not None:
            assert read_file(encrypted.location / name, kind).flags == FLAG_COMPRESSED | FLAG_ENCRYPTED
            checked += 1
    assert checked == 4


KINDS = {".seg": "segment", ".point": "point", "/chain": "chain", "/database": "database"}


def test_page_ids_are_sha256_in_a_plain_repository(tmp_path: Path) -> None:
    plain = Repository.init(tmp_path / "plain")
    assert plain.page_id(PAGE) == hashlib.sha256(PAGE).digest()


def test_page_ids_are_keyed_hmac_in_an_encrypted_repository(tmp_path: Path, encrypted: Repository) -> None:
    assert encrypted.key is not None
    page_id = encrypted.page_id(PAGE)
    assert page_id == hmac.new(encrypted.key.identification, PAGE, hashlib.sha256).digest()
    assert page_id != hashlib.sha256(PAGE).digest()
    other = Repository.init(tmp_path / "other", passphrase=PASSPHRASE)
    assert other.page_id(PAGE) != page_id


KEY = MasterKey(bytes(range(32)), bytes(range(32, 64)))


def test_each_record_gets_a_fresh_nonce() -> None:
    seal = sealing(FLAG_COMPRESSED | FLAG_ENCRYPTED, KEY)
    first, second = seal.seal(PAGE), seal.seal(PAGE)
    assert first[:NONCE_SIZE] != second[:NONCE_SIZE]
    assert len(first) == NONCE_SIZE + len(compress(PAGE)) + 16
    assert seal.open(first) == seal.open(second) == PAGE


def test_an_altered_record_fails_its_tag() -> None:
    seal = sealing(FLAG_COMPRESSED | FLAG_ENCRYPTED, KEY)
    stored = seal.seal(b"record")
    for index in range(len(stored)):
        altered = bytearray(stored)
        altered[index] ^= 0x01
        with pytest.raises(CorruptFile, match="authentication tag"):
            seal.open(bytes(altered))


def test_a_record_sealed_under_another_key_fails_its_tag() -> None:
    stored = sealing(FLAG_ENCRYPTED, KEY).seal(b"record")
    other = MasterKey(bytes(32), bytes(32))
    with pytest.raises(CorruptFile, match="authentication tag"):
        sealing(FLAG_ENCRYPTED, other).open(stored)


def test_an_encrypted_file_cannot_be_read_without_a_key() -> None:
    with pytest.raises(WrongPassphrase):
        sealing(FLAG_ENCRYPTED | FLAG_COMPRESSED, None)


def test_an_unencrypted_file_in_an_encrypted_repository_is_refused(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo", passphrase=PASSPHRASE)
    ref = fill(repo)
    forged = Segment(1, 512, POSITION, POSITION, (Transaction(2, 10, 1, ((1, bytes(512)),)),))
    data = b"".join(built(forged).file_chunks(sealing(FLAG_COMPRESSED, None)))
    (repo.location / repo.segment_key("db", ref)).write_bytes(data)
    with pytest.raises(CorruptFile):
        repo.read_segment("db", ref)


def test_a_missing_key_file_is_a_missing_file(tmp_path: Path) -> None:
    Repository.init(tmp_path / "repo", passphrase=PASSPHRASE)
    (tmp_path / "repo" / "key").unlink()
    with pytest.raises(MissingFile):
        Repository.open(tmp_path / "repo", passphrase=PASSPHRASE)
