"""What a repository holds and what its snapshots use: index documents, packs, used blobs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from strongroom.errors import IntegrityError, SnapshotNotFound
from strongroom.repository.locks import clear_gone_locks, read_locks
from strongroom.repository.repo import Repository
from strongroom.storage.base import Backend


@dataclass
class IndexView:
    """Every index file's packs, with all locations of each blob (the engine keeps only one)."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)   # index name -> document
    packs: dict[str, int] = field(default_factory=dict)             # pack id -> size
    entries: dict[str, list[list[Any]]] = field(default_factory=dict)  # pack id -> blob entries
    blob_packs: dict[str, set[str]] = field(default_factory=dict)   # blob hex -> pack ids
    pack_indexes: dict[str, set[str]] = field(default_factory=dict)  # pack id -> index names

    @classmethod
    def load(cls, repo: Repository) -> IndexView:
        """Read every index file; a damaged one is an error (deciding deletions needs all)."""
        view = cls()
        for key, _size in repo.backend.list("index/"):
            name = key.rsplit("/", 1)[-1]
            try:
                doc = repo.load_index_file(name)
            except IntegrityError:
                if not repo.backend.exists(key):
                    continue  # removed while listing (another prune's rewrite)
                raise
            view.docs[name] = doc
            for pack in doc["packs"]:
                pid = pack["id"]
                view.packs[pid] = pack["size"]
                view.entries.setdefault(pid, pack["blobs"])
                view.pack_indexes.setdefault(pid, set()).add(name)
                for entry in pack["blobs"]:
                    view.blob_packs.setdefault(entry[1], set()).add(pid)
        return view


def used_blobs(repo: Repository, names: Iterable[str]) -> set[str]:
    """Hex ids of every tree and content blob the named snapshots use.

    Raises IntegrityError if a snapshot or tree cannot be read: nothing may be judged unused
    while some snapshot's contents are unknown.
    """
    used: set[str] = set()
    walked: set[str] = set()
    for name in names:
        try:
            snap = repo.load_snapshot(name)
        except SnapshotNotFound:
            continue  # forgotten while we looked
        stack = [snap.tree]
        while stack:
            tree_id = stack.pop()
            if tree_id in walked:
                continue  # a shared subtree already walked
            walked.add(tree_id)
            used.add(tree_id)
            try:
                nodes = repo.load_tree(tree_id)
            except IntegrityError as exc:
                raise IntegrityError(f"snapshot {snap.short_id} cannot be read ({exc}); "
                                     "nothing was deleted") from None
            for node in nodes:
                used.update(node.content)
                if node.subtree:
                    stack.append(node.subtree)
    return used


def clear_dead_locks(backend: Backend) -> list[str]:
    """Remove lock files whose holder is gone: a dead process of this host (kill -9) or a
    lease not renewed in time (strongroom.repository.locks)."""
    return clear_gone_locks(backend)


def live_locks(backend: Backend) -> list[dict[str, Any]]:
    """Lock files currently present (for reports)."""
    return [json.loads(json.dumps(info)) for _, info in read_locks(backend)]
