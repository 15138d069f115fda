"""Read-only walks over a snapshot's blobs, built on the repository's public surface."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from strongroom.errors import IntegrityError
from strongroom.repository.format import pack_key

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot
    from strongroom.repository.model import Node


def walk(repo: Repository, snap: Snapshot) -> Iterator[tuple[str, Node]]:
    yield from repo.reader(snap).walk()


def blob_ids(repo: Repository, snap: Snapshot | None) -> tuple[set[str], set[str]]:
    """(tree blob ids, data blob ids) a snapshot references; empty for ``None``."""
    if snap is None:
        return set(), set()
    trees, data = {snap.tree}, set()
    for _path, node in walk(repo, snap):
        if node.subtree:
            trees.add(node.subtree)
        data.update(node.content)
    return trees, data


def read_blob(repo: Repository, hex_id: str) -> int:
    """Fetch, decrypt under the current key and re-hash one blob; returns its stored length."""
    bid = bytes.fromhex(hex_id)
    loc = repo.index.get(bid)
    if loc is None:
        raise IntegrityError(f"blob {hex_id[:16]} is not in the index")
    sealed = repo.backend.get_range(pack_key(loc.pack), loc.offset, loc.length)
    repo.decode_blob(loc.pack, loc.type, bid, sealed)
    return loc.length


def logical_checksum(entries: list[tuple[str, Node, str]]) -> str:
    """The engine's snapshot checksum over (path, node, sha256 actually read) entries."""
    rows = []
    for path, node, sha in entries:
        parent, _, name = path.rpartition("/")
        rows.append((parent, name, node, sha))
    digest = hashlib.sha256()
    for parent, name, node, sha in sorted(rows, key=lambda r: (r[0], r[1])):
        full = f"{parent}/{name}" if parent else name
        digest.update(f"{full}\0{node.type}\0{node.size}\0{sha or node.target}\n".encode(
            "utf-8", "surrogateescape"))
    return digest.hexdigest()
