"""Compression and encryption of records, and the repository key.

A repository is encrypted or not from `cps repo init` on. An encrypted one has a random 64-byte
master key: 32 bytes for AES-256-GCM and 32 bytes for HMAC-SHA256 page ids (so ids reveal nothing
about plaintext pages). The master key is stored in the key file sealed with a key derived from the
passphrase by scrypt; opening it with a wrong passphrase fails the GCM tag check, which is reported
as a wrong passphrase and never yields garbage.

Records are compressed with zstd (level 3) before sealing; a record of more than LARGE_RECORD bytes
(a segment's transactions) with a window of 2^LARGE_WINDOW_LOG bytes instead of level 3's 2 MiB, so
that a page written again anywhere in a segment costs a reference, not a copy. Each sealed record is
nonce (12 random bytes) | ciphertext | tag (16).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import CorruptFile, WrongPassphrase
from .format import FLAG_COMPRESSED, FLAG_ENCRYPTED, Sealing

NONCE_SIZE = 12
# scrypt cost: 2^15 x 8 x 1 takes ~0.1 s and 32 MiB; recorded in the key file, so it can rise later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
ZSTD_LEVEL = 3
LARGE_RECORD = 2 << 20
LARGE_WINDOW_LOG = 24  # 16 MiB: more than a whole segment (capture's segment_max_bytes); every zstd
# decoder accepts windows up to 128 MiB without being told to
MAX_DECOMPRESSED = 1 << 30

_local = threading.local()


def _compressors() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdCompressor]:
    """This thread's compressors for small and large records (zstd contexts are not shared)."""
    if not hasattr(_local, "compressors"):
        large = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, window_log=LARGE_WINDOW_LOG)
        _local.compressors = (zstandard.ZstdCompressor(level=ZSTD_LEVEL),
                              zstandard.ZstdCompressor(compression_params=large))
        _local.decompressor = zstandard.ZstdDecompressor()
    return _local.compressors  # type: ignore[no-any-return]


def compress(data: bytes) -> bytes:
    small, large = _compressors()
    return (large if len(data) > LARGE_RECORD else small).compress(data)


def decompress(data: bytes) -> bytes:
    _compressors()
    try:
        return _local.decompressor.decompress(data, max_output_size=MAX_DECOMPRESSED)  # type: ignore[no-any-return]
    except zstandard.ZstdError as exc:
        raise CorruptFile(f"a record does not decompress ({exc})") from exc


@dataclass(frozen=True, slots=True)
class MasterKey:
    encryption: bytes
    identification: bytes

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + AESGCM(self.encryption).encrypt(nonce, plaintext, None)

    def open(self, stored: bytes) -> bytes:
        try:
            return AESGCM(self.encryption).decrypt(stored[:NONCE_SIZE], stored[NONCE_SIZE:], None)
        except InvalidTag as exc:
            raise CorruptFile("a record fails its authentication tag: damaged or altered") from exc


def page_id(page: bytes, key: MasterKey | None) -> bytes:
    """The content address of a page: SHA-256, or HMAC-SHA256 under the repository key."""
    if key is None:
        return hashlib.sha256(page).digest()
    return hmac.new(key.identification, page, hashlib.sha256).digest()


def sealing(flags: int, key: MasterKey | None) -> Sealing:
    """How to seal and open records of a file with these flags."""
    if flags & FLAG_ENCRYPTED and key is None:
        raise WrongPassphrase(
            "this repository is encrypted", hint="Give the passphrase with --passphrase-file or "
            "the CPS_PASSPHRASE environment variable.")
    compressed = bool(flags & FLAG_COMPRESSED)
    encrypted = key if flags & FLAG_ENCRYPTED else None

    def seal(plaintext: bytes) -> bytes:
        data = compress(plaintext) if compressed else plaintext
        return encrypted.seal(data) if encrypted else data

    def open_(stored: bytes) -> bytes:
        data = encrypted.open(stored) if encrypted else stored
        return decompress(data) if compressed else data

    return Sealing(flags, seal, open_)


def new_key_record(passphrase: str) -> tuple[MasterKey, bytes]:
    """A new random master key and the key-file record that holds it under `passphrase`."""
    master = os.urandom(64)
    salt = os.urandom(16)
    kek = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    nonce = os.urandom(NONCE_SIZE)
    record = {
        "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex(),
        "sealed_key": (nonce + AESGCM(kek).encrypt(nonce, master, b"cps master key")).hex(),
    }
    return MasterKey(master[:32], master[32:]), json.dumps(record, sort_keys=True).encode()


def open_key_record(record: bytes, passphrase: str) -> MasterKey:
    fields = json.loads(record)
    kek = _derive(passphrase, bytes.fromhex(fields["salt"]), fields["n"], fields["r"], fields["p"])
    sealed = bytes.fromhex(fields["sealed_key"])
    try:
        master = AESGCM(kek).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], b"cps master key")
    except InvalidTag as exc:
        raise WrongPassphrase(
            "wrong passphrase for this repository",
            hint="Check the passphrase; nothing was read or changed.") from exc
    return MasterKey(master[:32], master[32:])


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=32)
