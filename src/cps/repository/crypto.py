"""Compression and encryption of records, and the repository key.

A repository is encrypted or not from `cps repo init` on. An encrypted one has a random 64-byte
master key: 32 bytes for AES-256-GCM and 32 bytes for HMAC-SHA256 page ids (so ids reveal nothing
about plaintext pages). The master key is stored in the key file sealed with a key derived from the
passphrase by scrypt; opening it with a wrong passphrase fails the GCM tag check, which is reported
as a wrong passphrase and never yields garbage.

Records are compressed with zstd (level 3) before sealing. A segment's transactions are compressed
as capture adds them (`RecordCompressor`), with a window of 2^LARGE_WINDOW_LOG bytes instead of
level 3's 2 MiB, so that a page written again anywhere in a segment costs a reference, not a copy;
such a frame does not say its size up front. Each sealed record is nonce (12 random bytes) |
ciphertext | tag (16).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import CorruptFile, WrongPassphrase
from .format import FLAG_COMPRESSED, FLAG_ENCRYPTED, Sealing

NONCE_SIZE = 12
# scrypt cost: 2^15 x 8 x 1 takes ~0.1 s and 32 MiB; recorded in the key file, so it can rise later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
ZSTD_LEVEL = 3
LARGE_WINDOW_LOG = 24  # 16 MiB: 32 MiB made segments of 24 MiB of pages only 1-2 % smaller for
# twice the memory; every zstd decoder accepts windows up to 128 MiB without being told to
MAX_DECOMPRESSED = 1 << 30
UNSIZED_READ = 4 << 20  # a frame that does not say its size is decompressed this much at a time

_local = threading.local()


def _contexts() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    """This thread's compressor and decompressor (zstd contexts are not shared)."""
    if not hasattr(_local, "contexts"):
        _local.contexts = (zstandard.ZstdCompressor(level=ZSTD_LEVEL), zstandard.ZstdDecompressor())
    return _local.contexts  # type: ignore[no-any-return]


def compress(data: bytes) -> bytes:
    return _contexts()[0].compress(data)


def decompress(data: bytes) -> bytes:
    decompressor = _contexts()[1]
    try:
        if zstandard.frame_content_size(data) >= 0:
            return decompressor.decompress(data, max_output_size=MAX_DECOMPRESSED)
        return _decompress_unsized(decompressor, data)
    except zstandard.ZstdError as exc:
        raise CorruptFile(f"a record does not decompress ({exc})") from exc


def _decompress_unsized(decompressor: zstandard.ZstdDecompressor, data: bytes) -> bytes:
    # In pieces: asked for the whole at once, zstd would reserve MAX_DECOMPRESSED up front.
    parts, size = [], 0
    with decompressor.stream_reader(data) as reader:
        while part := reader.read(UNSIZED_READ):
            size += len(part)
            if size > MAX_DECOMPRESSED:
                raise CorruptFile(f"a record decompresses to more than {MAX_DECOMPRESSED} bytes")
            parts.append(part)
    return b"".join(parts)


class RecordCompressor:
    """Compresses one large record at a time as its parts arrive (a segment's transactions, as
    they are captured), so that only compressed bytes are held; then the next record. Used by one
    thread; its 16 MiB window is kept from record to record."""

    def __init__(self) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, window_log=LARGE_WINDOW_LOG)
        self._zstd = zstandard.ZstdCompressor(compression_params=params)
        self.start()

    def start(self) -> None:
        """Begin a new record, dropping what was added since the last `finish`, if anything."""
        self._stream = self._zstd.compressobj()
        self._parts: list[bytes] = []

    def add(self, data: bytes) -> None:
        self._keep(self._stream.compress(data))

    def finish(self) -> tuple[bytes, ...]:
        """The record's compressed bytes, one zstd frame, in pieces; the next record begins."""
        self._keep(self._stream.flush())
        record = tuple(self._parts)
        self.start()
        return record

    def _keep(self, part: bytes) -> None:
        if part:  # zstd gives nothing back until it has a block's worth
            self._parts.append(part)


@dataclass(frozen=True, slots=True)
class MasterKey:
    encryption: bytes
    identification: bytes

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + AESGCM(self.encryption).encrypt(nonce, plaintext, None)

    def seal_pieces(self, pieces: Sequence[bytes]) -> list[bytes]:
        """`seal` of the pieces joined, made piece by piece: the same stored bytes, in pieces."""
        nonce = os.urandom(NONCE_SIZE)
        encryptor = Cipher(algorithms.AES(self.encryption), modes.GCM(nonce)).encryptor()
        sealed = [nonce, *(encryptor.update(piece) for piece in pieces), encryptor.finalize()]
        return [*sealed, encryptor.tag]

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

    def seal_compressed(pieces: Sequence[bytes]) -> list[bytes]:
        if not compressed:
            raise ValueError("a compressed record for a file whose records are not compressed")
        return encrypted.seal_pieces(pieces) if encrypted else list(pieces)

    def open_(stored: bytes) -> bytes:
        data = encrypted.open(stored) if encrypted else stored
        return decompress(data) if compressed else data

    return Sealing(flags, seal, open_, seal_compressed)


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
