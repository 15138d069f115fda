"""Pack files: sealed blobs back to back, a sealed header listing them, then a trailer.

``blob* || sealed_header || u32le(len(sealed_header)) || b"SRPACK01"``; the pack's name is the
SHA-256 of the whole file, so a damaged pack is recognised without the key.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.crypto.aead import SealError
from strongroom.crypto.epochs import epoch_of
from strongroom.errors import IntegrityError
from strongroom.repository.format import (
    AAD_PACK_HEADER,
    PACK_MAGIC,
    PACK_TARGET,
    Sealer,
    content_name,
    open_document,
    pack_key,
    seal_document,
)
from strongroom.storage.base import Backend

TRAILER = struct.Struct("<I8s")


def build_pack(aead: Sealer | AESGCM, body: list[bytes], entries: list[list[Any]]
               ) -> tuple[str, bytes]:
    """Finish a pack from its sealed blobs (joined once): append the sealed header and
    trailer; return ``(pack id, bytes)``. The header lists the epochs sealing the blobs (a
    repack may mix epochs), so re-encryption finds old blobs from the header alone."""
    doc: dict[str, Any] = {"version": 1, "blobs": entries}
    if not isinstance(aead, AESGCM):
        doc["epochs"] = sorted({epoch_of(b[:8]) for b in body})
    header = seal_document(aead, doc, AAD_PACK_HEADER)
    data = b"".join([*body, header, TRAILER.pack(len(header), PACK_MAGIC)])
    return content_name(data), data


def read_pack_header(aead: Sealer | AESGCM, pack_id: str, data: bytes,
                     check_name: bool = True) -> list[list[Any]]:
    """The blob entries of a whole pack file, after checking its name and trailer."""
    if check_name and content_name(data) != pack_id:
        raise IntegrityError(f"pack {pack_id}: contents do not match its name (damaged)")
    return read_pack_header_doc(aead, pack_id, data)["blobs"]


def header_length(pack_id: str, tail: bytes) -> int:
    """Bytes of sealed header plus trailer at the end of a pack (``tail`` ends the pack)."""
    if len(tail) < TRAILER.size:
        raise IntegrityError(f"pack {pack_id}: truncated")
    hlen, magic = TRAILER.unpack_from(tail, len(tail) - TRAILER.size)
    if magic != PACK_MAGIC:
        raise IntegrityError(f"pack {pack_id}: bad trailer")
    return hlen + TRAILER.size


def pack_epochs(aead: Sealer | AESGCM, pack_id: str, tail: bytes) -> set[int]:
    """Epochs a pack needs (its header's and its blobs'), from the pack's last bytes."""
    doc = read_pack_header_doc(aead, pack_id, tail)
    start = len(tail) - header_length(pack_id, tail)
    header_epoch = epoch_of(tail[start:start + 8])
    blobs = doc.get("epochs")
    if blobs is None:  # written before epochs: blobs and header share the format-1 key
        blobs = [header_epoch]
    return {header_epoch, *blobs}


def read_pack_header_doc(aead: Sealer | AESGCM, pack_id: str, data: bytes) -> dict[str, Any]:
    """The decrypted header document of a pack (``data``: the whole pack or its end)."""
    if len(data) < TRAILER.size:
        raise IntegrityError(f"pack {pack_id}: truncated")
    hlen, magic = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    if magic != PACK_MAGIC or hlen > len(data) - TRAILER.size:
        raise IntegrityError(f"pack {pack_id}: bad trailer")
    start = len(data) - TRAILER.size - hlen
    try:
        doc = open_document(aead, data[start:start + hlen], AAD_PACK_HEADER)
    except SealError as exc:
        raise IntegrityError(f"pack {pack_id}: header {exc}") from None
    return doc


class PackWriter:
    """Collects sealed blobs into packs of about ``target`` bytes and uploads them in background.

    Thread-safe. ``on_pack(pack_id, size, entries)`` runs once each pack is stored.
    """

    def __init__(self, backend: Backend, aead: Sealer | AESGCM,
                 on_pack: Callable[[str, int, list[list[Any]]], None],
                 target: int = PACK_TARGET, uploaders: int = 2) -> None:
        self.backend = backend
        self.aead = aead
        self.on_pack = on_pack
        self.target = target
        self._lock = threading.Lock()
        self._body: list[bytes] = []  # sealed blobs, joined once when the pack is full
        self._size = 0
        self._entries: list[list[Any]] = []
        self._pool = ThreadPoolExecutor(max_workers=uploaders, thread_name_prefix="pack-upload")
        self._pending: list[Future[None]] = []
        self._slots = threading.BoundedSemaphore(uploaders + 1)
        self.bytes_stored = 0

    def add(self, blob_type: str, bid: bytes, sealed: bytes, raw_length: int) -> None:
        with self._lock:
            self._entries.append([blob_type, bid.hex(), self._size, len(sealed), raw_length])
            self._body.append(sealed)
            self._size += len(sealed)
            self.bytes_stored += len(sealed)
            if self._size < self.target:
                return
            body, entries = self._body, self._entries
            self._body, self._entries, self._size = [], [], 0
        self._submit(body, entries)

    def _submit(self, body: list[bytes], entries: list[list[Any]]) -> None:
        self._slots.acquire()  # bound memory: at most uploaders+1 packs in flight
        self._pending.append(self._pool.submit(self._upload, body, entries))

    def _upload(self, body: list[bytes], entries: list[list[Any]]) -> None:
        try:
            pack_id, data = build_pack(self.aead, body, entries)
            self.backend.put(pack_key(pack_id), data)
            self.on_pack(pack_id, len(data), entries)
        finally:
            self._slots.release()

    def flush(self) -> None:
        """Store the last partial pack and wait for every upload; re-raise the first failure."""
        with self._lock:
            body, entries = self._body, self._entries
            self._body, self._entries, self._size = [], [], 0
        if entries:
            self._submit(body, entries)
        pending, self._pending = self._pending, []
        for fut in pending:
            fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
