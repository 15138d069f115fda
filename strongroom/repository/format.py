"""Format constants and the codec for sealed blobs and sealed files (see docs/FORMAT.md)."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.crypto.aead import SealError, open_sealed, seal

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # format 1 is read and written as before until `strongroom migrate`
CHUNK_MIN = 256 * 1024
CHUNK_AVG = 1024 * 1024
CHUNK_MAX = 4 * 1024 * 1024
PACK_TARGET = 32 * 1024 * 1024
PACK_MAGIC = b"SRPACK01"
ZSTD_LEVEL = 3

BLOB_DATA = "D"
BLOB_TREE = "T"

RAW, ZSTD = 0, 1

# Associated data per object kind: binds what a ciphertext claims to be to what it is.
AAD_PACK_HEADER = b"strongroom/v1/pack-header"
AAD_INDEX = b"strongroom/v1/index"
AAD_SNAPSHOT = b"strongroom/v1/snapshot"


class Sealer(Protocol):
    """What seals and opens objects: the repository's keyring (strongroom.crypto.epochs)."""

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytes: ...

    def open(self, sealed: bytes | memoryview, aad: bytes) -> bytes: ...


def _seal(sealer: Sealer | AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    if isinstance(sealer, AESGCM):  # a bare key: format-1 sealing
        return seal(sealer, plaintext, aad)
    return sealer.seal(plaintext, aad)


def _open(sealer: Sealer | AESGCM, sealed: bytes | memoryview, aad: bytes) -> bytes:
    if isinstance(sealer, AESGCM):
        return open_sealed(sealer, sealed, aad)
    return sealer.open(sealed, aad)


def blob_aad(blob_type: str, blob_id: bytes) -> bytes:
    return b"strongroom/v1/blob/" + blob_type.encode() + b"/" + blob_id


def blob_id(id_key: bytes, data: bytes | memoryview) -> bytes:
    """Keyed BLAKE3 of the plaintext: equal data gives equal ids only under the same key."""
    return blake3.blake3(data, key=id_key, max_threads=1).digest()


_local = threading.local()


def compress(data: bytes | memoryview) -> bytes:
    """``flag || payload``: zstd when it helps, raw otherwise."""
    cctx = getattr(_local, "cctx", None)
    if cctx is None:
        cctx = _local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    packed = cctx.compress(data)
    if len(packed) < len(data):
        return bytes([ZSTD]) + packed
    return bytes([RAW]) + bytes(data)


def decompress(data: bytes) -> bytes:
    if not data:
        raise SealError("empty payload")
    if data[0] == ZSTD:
        dctx = getattr(_local, "dctx", None)
        if dctx is None:  # one per thread: making one per blob cost more than decompressing
            dctx = _local.dctx = zstandard.ZstdDecompressor()
        return dctx.decompress(memoryview(data)[1:])
    if data[0] == RAW:
        return data[1:]
    raise SealError(f"unknown compression flag {data[0]}")


def seal_blob(aead: Sealer | AESGCM, blob_type: str, bid: bytes, data: bytes | memoryview
              ) -> bytes:
    return _seal(aead, compress(data), blob_aad(blob_type, bid))


def open_blob(aead: Sealer | AESGCM, blob_type: str, bid: bytes, sealed: bytes) -> bytes:
    return decompress(_open(aead, sealed, blob_aad(blob_type, bid)))


def reseal(old: Sealer | AESGCM, new: Sealer | AESGCM, sealed: bytes | memoryview, aad: bytes
           ) -> bytes:
    """The same plaintext (still compressed) sealed again under ``new``'s current key."""
    return _seal(new, _open(old, sealed, aad), aad)


def seal_document(aead: Sealer | AESGCM, doc: dict[str, Any], aad: bytes) -> bytes:
    """A sealed JSON file (index, snapshot, pack header)."""
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return _seal(aead, compress(raw), aad)


def open_document(aead: Sealer | AESGCM, sealed: bytes | memoryview, aad: bytes
                  ) -> dict[str, Any]:
    return json.loads(decompress(_open(aead, sealed, aad)))


def content_name(data: bytes | memoryview) -> str:
    """Storage name of a content-addressed file: SHA-256 of its stored bytes."""
    return hashlib.sha256(data).hexdigest()


def pack_key(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"
