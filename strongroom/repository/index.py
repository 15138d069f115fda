"""The in-memory index: where each blob lives (pack, offset, length), loaded from index files."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BlobLocation:
    pack: str
    type: str
    offset: int
    length: int
    raw_length: int


class Index:
    """Blob id (bytes) -> location; plus which index file described which pack."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, BlobLocation] = {}
        self.packs: dict[str, int] = {}  # pack id -> size
        self.pack_sources: dict[str, set[str]] = {}  # pack id -> index files naming it
        self.files: set[str] = set()
        self._lock = threading.Lock()

    def add_document(self, name: str, doc: dict[str, Any]) -> None:
        """Merge one decrypted index file."""
        with self._lock:
            self.files.add(name)
            for pack in doc["packs"]:
                pid = pack["id"]
                self.packs[pid] = pack["size"]
                self.pack_sources.setdefault(pid, set()).add(name)
                for btype, bid, off, length, raw in pack["blobs"]:
                    self.blobs.setdefault(bytes.fromhex(bid),
                                          BlobLocation(pid, btype, off, length, raw))

    def add_pack(self, pack_id: str, size: int, entries: list[list[Any]]) -> None:
        self.add_document("", {"packs": [{"id": pack_id, "size": size, "blobs": entries}]})

    def get(self, bid: bytes) -> BlobLocation | None:
        return self.blobs.get(bid)

    def __contains__(self, bid: bytes) -> bool:
        return bid in self.blobs


def index_document(packs: list[tuple[str, int, list[list[Any]]]]) -> dict[str, Any]:
    """The plaintext of an index file for the given ``(pack id, size, entries)``."""
    return {"version": 1,
            "packs": [{"id": pid, "size": size, "blobs": entries} for pid, size, entries in packs]}
