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
        # further copies of a blob in other packs (concurrent writers, data stored again after
        # a pack was lost): a reader falls back on them when the first copy is unreadable
        self.copies: dict[bytes, list[BlobLocation]] = {}
        self.packs: dict[str, int] = {}  # pack id -> size
        self.pack_sources: dict[str, set[str]] = {}  # pack id -> index files naming it
        self.files: set[str] = set()
        self.dropped: set[str] = set()  # packs dropped as missing from storage
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
                    key = bytes.fromhex(bid)
                    loc = BlobLocation(pid, btype, off, length, raw)
                    first = self.blobs.setdefault(key, loc)
                    if first.pack != pid and loc not in self.copies.get(key, ()):
                        self.copies.setdefault(key, []).append(loc)

    def add_pack(self, pack_id: str, size: int, entries: list[list[Any]]) -> None:
        self.add_document("", {"packs": [{"id": pack_id, "size": size, "blobs": entries}]})

    def drop_packs(self, packs: set[str]) -> None:
        """Forget packs (and the blobs located in them) that are not in storage any more."""
        if not packs:
            return
        with self._lock:
            self.dropped |= packs
            for pid in packs:
                self.packs.pop(pid, None)
                self.pack_sources.pop(pid, None)
            blobs: dict[bytes, BlobLocation] = {}
            copies: dict[bytes, list[BlobLocation]] = {}
            for bid, loc in self.blobs.items():
                alive = [c for c in [loc, *self.copies.get(bid, ())] if c.pack not in packs]
                if alive:
                    blobs[bid] = alive[0]
                    if alive[1:]:
                        copies[bid] = alive[1:]
            self.blobs, self.copies = blobs, copies

    def locations(self, bid: bytes) -> list[BlobLocation]:
        """Every known copy of a blob, the first one first."""
        first = self.blobs.get(bid)
        return [first, *self.copies.get(bid, ())] if first is not None else []

    def get(self, bid: bytes) -> BlobLocation | None:
        return self.blobs.get(bid)

    def __contains__(self, bid: bytes) -> bool:
        return bid in self.blobs


def index_document(packs: list[tuple[str, int, list[list[Any]]]]) -> dict[str, Any]:
    """The plaintext of an index file for the given ``(pack id, size, entries)``."""
    return {"version": 1,
            "packs": [{"id": pid, "size": size, "blobs": entries} for pid, size, entries in packs]}
