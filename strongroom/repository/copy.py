"""Copy snapshots between repositories, re-encrypting under the target's key.

Blob ids are keyed by each repository's master key, so a blob copied to a repository with
another key gets a new id, and trees are rewritten to name the new ids. Only blobs the target
lacks are uploaded. A sealed map ``copymap/<source repo id>/<id>`` in the target remembers
``source blob id -> target blob id`` for blobs already indexed there, so a later or resumed copy
skips them (and whole unchanged subtrees) without reading them again. Packs and index files go
first, the snapshot manifest last: an interrupted copy leaves garbage, and the next run resumes.
Target packs missing from storage are dropped from the index first, so their blobs are
uploaded again and map entries naming them are not trusted. Every new pack is read back and
checked on arrival (archived packs: size check), the copied snapshot's listing must equal the
original's, and the target lock and every target pack must still be there, before its manifest
is written.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from strongroom.audit.operation import recorded
from strongroom.crypto.aead import SealError
from strongroom.errors import IntegrityError, SnapshotNotFound
from strongroom.repository.format import (
    BLOB_DATA,
    BLOB_TREE,
    blob_id,
    content_name,
    open_document,
    pack_key,
    seal_blob,
    seal_document,
)
from strongroom.repository.index import index_document
from strongroom.repository.locks import RepositoryLock
from strongroom.repository.model import Node, Snapshot
from strongroom.repository.packs import PackWriter, read_pack_header
from strongroom.repository.presence import (
    confirm_held,
    index_of_stored_packs,
    save_while_held,
)
from strongroom.repository.repo import Repository
from strongroom.storage.base import Backend

AAD_COPYMAP = b"strongroom/v1/copymap"
COPIED_FROM = "copied_from"
INDEX_EVERY = 4  # packs per checkpoint: an interrupted copy resumes from the last one


class _ReadableWrites:
    """Backend proxy writing tree packs where they stay readable without staging, so archives
    stay listable."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._backend.put_readable(key, data)


class _Copier:
    def __init__(self, src: Repository, dst: Repository, threads: int) -> None:
        self.src, self.dst = src, dst
        self.same_key = src.id_key == dst.id_key
        self.map: dict[str, str] = {}        # src blob hex -> dst blob hex (indexed in dst)
        self.pending: dict[str, str] = {}    # dst blob hex -> src blob hex (not yet indexed)
        self.unsaved: dict[str, str] = {}    # indexed, not yet in a copymap file
        self.new_packs: list[str] = []
        self.sizes: dict[str, int] = {}
        self.complete: set[str] = set()      # dst trees whose whole subtree is in dst
        self._batch: list[tuple[str, int, list[list[Any]]]] = []
        self._lock = threading.Lock()
        self.stats = {"blobs_copied": 0, "blobs_reused": 0, "bytes_uploaded": 0,
                      "trees_reused": 0}
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="copy")
        tree_backend: Any = _ReadableWrites(dst.backend)
        self.data_packs = PackWriter(dst.backend, dst.aead, self._on_pack, dst.pack_target)
        self.tree_packs = PackWriter(tree_backend, dst.aead, self._on_pack, dst.pack_target)

    # ---- the map ---------------------------------------------------------------------------
    def load_map(self) -> None:
        """Read the target's index, drop its packs missing from storage, then trust the map
        entries whose target blob is still indexed."""
        index = index_of_stored_packs(self.dst)
        for key, _ in self.dst.backend.list(f"copymap/{self.src.id}/"):
            try:
                doc = open_document(self.dst.aead, self.dst.backend.get(key), AAD_COPYMAP)
            except (SealError, ValueError, IntegrityError):
                continue  # a damaged map only costs re-reading some blobs
            for s, d in doc["map"].items():
                if bytes.fromhex(d) in index:
                    self.map[s] = d

    def _save_map(self, entries: dict[str, str]) -> None:
        if not entries:
            return
        data = seal_document(self.dst.aead, {"version": 1, "map": entries}, AAD_COPYMAP)
        self.dst.backend.put(f"copymap/{self.src.id}/{content_name(data)}", data)

    def _on_pack(self, pack_id: str, size: int, entries: list[list[Any]]) -> None:
        with self._lock:
            self._batch.append((pack_id, size, entries))
            self.new_packs.append(pack_id)
            self.sizes[pack_id] = size
            self.stats["bytes_uploaded"] += size
            batch = self._batch if len(self._batch) >= INDEX_EVERY else None
            if batch:
                self._batch = []
        if batch:
            self._commit_batch(batch)

    def _commit_batch(self, batch: list[tuple[str, int, list[list[Any]]]]) -> None:
        """Index a batch of stored packs, then record their blobs in the copy map."""
        self.dst.save_index(index_document(batch))
        with self._lock:
            for _, _, entries in batch:
                for entry in entries:
                    src_hex = self.pending.pop(entry[1], None)
                    if src_hex is not None:
                        self.map[src_hex] = entry[1]
                        self.unsaved[src_hex] = entry[1]
            done, self.unsaved = self.unsaved, {}
        self._save_map(done)

    def flush(self) -> None:
        self.data_packs.flush()
        self.tree_packs.flush()
        with self._lock:
            batch, self._batch = self._batch, []
        if batch:
            self._commit_batch(batch)
        else:
            with self._lock:
                done, self.unsaved = self.unsaved, {}
            self._save_map(done)

    def close(self) -> None:
        self.data_packs.close()
        self.tree_packs.close()
        self.pool.shutdown(wait=True, cancel_futures=True)

    # ---- blobs and trees -------------------------------------------------------------------
    def _store(self, src_hex: str, plain: bytes, btype: str) -> str:
        dst_id = blob_id(self.dst.id_key, plain)
        dst_hex = dst_id.hex()
        with self._lock:
            if dst_id in self.dst.index:
                self.map[src_hex] = self.unsaved[src_hex] = dst_hex
                self.stats["blobs_reused"] += 1
                return dst_hex
            if dst_hex in self.pending:
                return dst_hex
            self.pending[dst_hex] = src_hex
            self.stats["blobs_copied"] += 1
        writer = self.tree_packs if btype == BLOB_TREE else self.data_packs
        writer.add(btype, dst_id, seal_blob(self.dst.aead, btype, dst_id, plain), len(plain))
        return dst_hex

    def data(self, src_hex: str) -> str:
        known = self.map.get(src_hex)
        if known is not None:
            with self._lock:
                self.stats["blobs_reused"] += 1
            return known
        if self.same_key and bytes.fromhex(src_hex) in self.dst.index:
            with self._lock:
                self.map[src_hex] = self.unsaved[src_hex] = src_hex
                self.stats["blobs_reused"] += 1
            return src_hex
        plain = self.src.load_blob(bytes.fromhex(src_hex), BLOB_DATA)  # verified on read
        return self._store(src_hex, plain, BLOB_DATA)

    def _whole(self, dst_tree: str) -> bool:
        """True if a target tree and everything under it is indexed in the target (a tree
        left over from a forgotten snapshot may have lost content to prune)."""
        if dst_tree in self.complete:
            return True
        try:
            nodes = self.dst.load_tree(dst_tree)
        except IntegrityError:
            return False
        for node in nodes:
            if any(bytes.fromhex(c) not in self.dst.index for c in node.content):
                return False
            if node.subtree and not self._whole(node.subtree):
                return False
        self.complete.add(dst_tree)
        return True

    def tree(self, src_tree: str) -> str:
        known = self.map.get(src_tree)
        if known is not None and self._whole(known):
            self.stats["trees_reused"] += 1
            return known
        nodes: list[Node] = []
        for node in self.src.load_tree(src_tree):
            new = replace(node, content=list(node.content), meta=dict(node.meta))
            if node.type == "file" and node.content:
                new.content = list(self.pool.map(self.data, node.content))
            if node.subtree:
                new.subtree = self.tree(node.subtree)
            nodes.append(new)
        raw = json.dumps({"nodes": [n.to_dict() for n in nodes]}, sort_keys=True,
                         separators=(",", ":")).encode()
        return self._store(src_tree, raw, BLOB_TREE)


def listing(repo: Repository, snap: Snapshot) -> list[tuple[Any, ...]]:
    """The logical contents of a snapshot (paths, types, sizes, hashes, metadata), sorted."""
    out = []
    for path, node in repo.reader(snap).walk():
        out.append((path, node.type, node.mode, node.mtime_ns, node.size, node.sha256,
                    node.target, node.uid, node.gid, json.dumps(node.meta, sort_keys=True)))
    return out


def check_arrival(dst: Repository, pack_ids: list[str], sizes: dict[str, int] | None = None
                  ) -> list[str]:
    """Re-read each new pack from the target: name, header and every blob must check out."""
    problems = []
    for pid in pack_ids:
        info = dst.backend.head(pack_key(pid))
        if info is not None and not info.readable:  # archived at once: only its size checks
            if sizes and info.size != sizes.get(pid):
                problems.append(f"pack {pid[:16]}: size differs on arrival")
            continue
        try:
            data = dst.backend.get(pack_key(pid))
            for btype, bid_hex, off, length, _raw in read_pack_header(dst.aead, pid, data):
                dst.decode_blob(pid, btype, bytes.fromhex(bid_hex), data[off:off + length])
        except IntegrityError as exc:
            problems.append(str(exc))
    return problems


def existing_copies(src: Repository, dst: Repository) -> dict[str, str]:
    """Source snapshot id -> target snapshot id, for snapshots already copied."""
    out = {}
    for snap in dst.list_snapshots():
        origin = snap.meta.get(COPIED_FROM) or {}
        if origin.get("repository") == src.id and origin.get("snapshot"):
            out[origin["snapshot"]] = snap.id
        elif src.id_key == dst.id_key:
            out.setdefault(snap.id, snap.id)
    return out


@recorded("copy", repo_arg="src")
@recorded("copy", repo_arg="dst")
def copy_snapshots(src: Repository, dst: Repository, snapshot_ids: list[str] | None = None, *,
                   source_name: str | None = None, verify: bool = True, threads: int = 4,
                   progress: Callable[[str, Snapshot], None] | None = None) -> dict[str, Any]:
    """Copy snapshots (ids, prefixes or 'latest'; default all) from ``src`` to ``dst``.

    Returns ``{"snapshots": {source id: target id}, "copied": [...], "already": [...],
    "blobs_copied", "blobs_reused", "bytes_uploaded", "verified"}``.
    """
    if src.id == dst.id and src.url == dst.url:
        raise IntegrityError("source and target are the same repository")
    listed = {s.id: s for s in src.list_snapshots(source_name)}  # each with its arrival
    if snapshot_ids:
        wanted = [src.find_snapshot(ref, source_name) for ref in snapshot_ids]
        wanted = [listed.get(s.id, s) for s in wanted]
    else:
        wanted = list(listed.values())
    wanted = sorted({s.id: s for s in wanted}.values(), key=lambda s: s.order_key())
    src_lock = RepositoryLock.acquire(src.backend, exclusive=False, purpose="copy (source)")
    try:
        dst_lock = RepositoryLock.acquire(dst.backend, exclusive=False,
                                          purpose="copy (target)")
        try:
            return _copy(src, dst, dst_lock, wanted, verify, threads, progress)
        finally:
            dst_lock.release()
    finally:
        src_lock.release()


def _copy(src: Repository, dst: Repository, dst_lock: RepositoryLock, wanted: list[Snapshot],
          verify: bool, threads: int, progress: Callable[[str, Snapshot], None] | None
          ) -> dict[str, Any]:
    done = existing_copies(src, dst)
    result: dict[str, Any] = {"snapshots": {}, "copied": [], "already": [], "verified": verify}
    copier = _Copier(src, dst, threads)
    try:
        copier.load_map()
        for snap in wanted:
            if snap.id in done:
                result["snapshots"][snap.id] = done[snap.id]
                result["already"].append(snap.id)
                continue
            if progress:
                progress("copy", snap)
            root = copier.tree(snap.tree)
            copier.flush()
            if verify:
                problems = check_arrival(dst, copier.new_packs, copier.sizes)
                if problems:
                    raise IntegrityError(f"copy of snapshot {snap.short_id} failed verification "
                                         f"on arrival: {problems[0]}")
                copier.new_packs = []
            origin = {"repository": src.id, "snapshot": snap.id, "url": src.url}
            new = snap.model_copy(update={
                "tree": root, "parent": done.get(snap.parent or ""),
                "meta": {**snap.meta, COPIED_FROM: origin},
                "arrived": snap.arrival})  # the source's, not the copy's: placed alike
            if verify and listing(dst, new) != listing(src, snap):
                raise IntegrityError(f"copy of snapshot {snap.short_id} does not list the same "
                                     "contents as the original")
            # every pack the target's index names: those this copy reuses, and its own
            relied = set(dst.index.packs)
            confirm_held(dst_lock, dst.backend, relied, f"the copy of snapshot {snap.short_id}")
            saved = save_while_held(dst, dst_lock, new, relied)
            done[snap.id] = saved.id
            result["snapshots"][snap.id] = saved.id
            result["copied"].append(snap.id)
    finally:
        copier.close()
    result.update(copier.stats)
    return result


def find_copy(dst: Repository, src_snapshot_id: str) -> Snapshot:
    """The target's copy of a source snapshot (by its original id)."""
    for snap in dst.list_snapshots():
        origin = snap.meta.get(COPIED_FROM) or {}
        if origin.get("snapshot") == src_snapshot_id or snap.id == src_snapshot_id:
            return snap
    raise SnapshotNotFound(f"no copy of snapshot {src_snapshot_id[:8]} in {dst.url}")


