"""Writing a snapshot: chunk, hash, dedupe, seal, pack; then trees, index and manifest last."""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from pyfastcdc.cy import FastCDC

from strongroom import audit
from strongroom.errors import StrongroomError
from strongroom.repository.format import (
    BLOB_DATA,
    BLOB_TREE,
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    blob_id,
    seal_blob,
)
from strongroom.repository.index import index_document
from strongroom.repository.locks import BACKUP_LOCK_WAIT, RepositoryLock
from strongroom.repository.model import Node, Snapshot, SnapshotStats
from strongroom.repository.packs import PackWriter

if TYPE_CHECKING:
    from strongroom.repository.repo import Repository

SEAL_WORKERS = max(2, os.cpu_count() or 2)
SEAL_WINDOW = 2 * SEAL_WORKERS  # chunks of one stream hashed, compressed, sealed in parallel
INDEX_EVERY = 32  # packs per intermediate index file, so long backups leave reusable data


def split_path(path: str) -> tuple[str, str]:
    path = path.strip("/")
    if not path or any(p in ("", ".", "..") for p in path.split("/")):
        raise StrongroomError(f"invalid path in snapshot: {path!r}")
    parent, _, name = path.rpartition("/")
    return parent, name


class SnapshotWriter:
    """Collects nodes and content for one snapshot; nothing is visible until :meth:`commit`."""

    def __init__(self, repo: Repository, source_name: str, source_kind: str, kind: str,
                 parent: Snapshot | None, tags: list[str], paths: list[str],
                 progress: Any = None) -> None:
        self.repo = repo
        self.source_name = source_name
        self.source_kind = source_kind
        self.kind = kind
        self.parent = parent
        self.tags = tags
        self.paths = paths
        self.progress = progress
        self.meta: dict[str, Any] = {}
        self.stats = SnapshotStats()
        self.started = time.monotonic()
        self.dirs: dict[str, dict[str, Node]] = {"": {}}
        # path -> its tree id and nodes in the parent snapshot
        self._base_trees: dict[str, tuple[str, list[Node]]] = {}
        self._lock = threading.Lock()
        self._new: set[bytes] = set()
        self._packs: list[tuple[str, int, list[list[Any]]]] = []
        self._local = threading.local()
        self._packer = PackWriter(repo.backend, repo.aead, self._on_pack, repo.pack_target)
        self._seal_pool = ThreadPoolExecutor(max_workers=SEAL_WORKERS,
                                             thread_name_prefix="seal")
        self._lockfile = RepositoryLock.acquire(repo.backend, exclusive=False,
                                                wait_s=BACKUP_LOCK_WAIT,
                                                purpose=f"backup {source_name}")
        self._done = False
        self._stopping = threading.Event()
        try:
            index = repo.reload_index()  # a prune may have removed packs since it was loaded
            # Never deduplicate against a pack that is gone (lost, deleted by hand): its blobs
            # are stored again, so this snapshot restores even if older ones cannot. Index
            # first, then the listing: packs are stored before the index files naming them.
            stored = {key.rsplit("/", 1)[-1] for key, _ in repo.backend.list("data/")}
            index.drop_packs(set(index.packs) - stored)
        except BaseException:  # no context manager yet to release the lock: do it here
            self.abort()
            raise

    # ---- context manager -----------------------------------------------------------------
    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()
        if isinstance(exc[1], BaseException):
            audit.backup_failed(self.repo, self.source_name, self.kind, exc[1])

    def stop_reading(self) -> None:
        """Make running :meth:`store_stream` calls give up at their next chunk (Ctrl-C or a
        failure elsewhere: no need to finish reading a huge file for a snapshot never made)."""
        self._stopping.set()

    def abort(self) -> None:
        """Stop without a snapshot; stored packs stay as garbage for prune."""
        self._stopping.set()
        self._done = True
        self._seal_pool.shutdown(wait=True, cancel_futures=True)
        self._packer.close()
        self._lockfile.release()

    # ---- nodes ---------------------------------------------------------------------------
    def _ensure_dir(self, path: str) -> dict[str, Node]:
        entries = self.dirs.get(path)
        missing = []
        while entries is None:  # no recursion: paths may be deeper than the recursion limit
            missing.append(path)
            path = split_path(path)[0]
            entries = self.dirs.get(path)
        for path in reversed(missing):
            name = split_path(path)[1]
            entries.setdefault(name, Node(name=name, type="dir", mode=0o755))
            entries = self.dirs[path] = {}
        return entries

    def add_node(self, path: str, node: Node) -> Node:
        """Place a node (new, or reused unchanged from the parent snapshot) at ``path``."""
        parent, name = split_path(path)
        node.name = name
        with self._lock:
            if node.type == "dir":
                self._ensure_dir(path)
                self.stats.dirs += 1
            else:
                self.stats.files += 1
                self.stats.bytes_total += node.size
            self._ensure_dir(parent)[name] = node
        return node

    def add_dir(self, path: str, mode: int = 0o755, mtime_ns: int = 0, **attrs: Any) -> Node:
        return self.add_node(path, Node(name="", type="dir", mode=mode, mtime_ns=mtime_ns,
                                        **attrs))

    def add_stream(self, path: str, stream: IO[bytes], *, mode: int = 0o644,
                   mtime_ns: int | None = None, meta: dict[str, Any] | None = None,
                   **attrs: Any) -> Node:
        """Chunk and store a stream as a file node; thread-safe."""
        content, size, digest = self.store_stream(stream)
        node = Node(name="", type="file", mode=mode,
                    mtime_ns=time.time_ns() if mtime_ns is None else mtime_ns,
                    size=size, sha256=digest, content=content, meta=meta or {}, **attrs)
        return self.add_node(path, node)

    def add_bytes(self, path: str, data: bytes, **kwargs: Any) -> Node:
        return self.add_stream(path, io.BytesIO(data), **kwargs)

    def base_tree(self, path: str, tree_id: str, nodes: list[Node]) -> None:
        """Name directory ``path``'s tree (and its nodes) in the parent snapshot: if its nodes
        come out equal, that tree is reused as it is instead of being serialised and hashed
        again (the nodes are kept, so nothing is decoded twice)."""
        self._base_trees[path.strip("/")] = (tree_id, nodes)

    def set_meta(self, meta: dict[str, Any]) -> None:
        """Source-specific facts for the manifest (counts, checksums, positions)."""
        self.meta.update(meta)

    # ---- content -------------------------------------------------------------------------
    def _chunker(self) -> FastCDC:
        cdc = getattr(self._local, "cdc", None)
        if cdc is None:
            cdc = self._local.cdc = FastCDC(CHUNK_AVG - CHUNK_MIN, min_size=CHUNK_MIN,
                                            max_size=CHUNK_MAX, seed=self.repo.chunker_seed)
        return cdc

    def store_stream(self, stream: IO[bytes]) -> tuple[list[str], int, str]:
        """Store a stream's chunks; return (blob ids, size, sha256). Reads ahead once to
        take the fast path for data smaller than one minimum chunk."""
        sha = hashlib.sha256()
        first = stream.read(CHUNK_MIN)
        while 0 < len(first) < CHUNK_MIN:  # a short read is not the end (pipes, /proc, FUSE)
            more = stream.read(CHUNK_MIN - len(first))
            if not more:
                break
            first += more
        if len(first) < CHUNK_MIN:
            sha.update(first)
            ids = [self.store_chunk(first)] if first else []
            return ids, len(first), sha.hexdigest()
        ids: list[str] = []
        size = 0
        window: deque[Future[str]] = deque()
        try:
            for chunk in self._chunker().cut_stream(_Prefixed(first, stream)):
                if self._stopping.is_set():
                    raise StrongroomError("backup stopped")
                data = bytes(chunk.data)  # the view is only valid until the next chunk
                sha.update(data)
                size += len(data)
                window.append(self._seal_pool.submit(self.store_chunk, data))
                if len(window) >= SEAL_WINDOW:
                    ids.append(window.popleft().result())
            while window:
                ids.append(window.popleft().result())
        finally:
            for fut in window:
                fut.cancel()
        return ids, size, sha.hexdigest()

    def store_chunk(self, data: bytes | memoryview, blob_type: str = BLOB_DATA) -> str:
        """Store one blob unless the repository already has it; return its id (hex)."""
        bid = blob_id(self.repo.id_key, data)
        with self._lock:
            if blob_type == BLOB_DATA:
                self.stats.bytes_read += len(data)
            known = bid in self._new or bid in self.repo.index
            if not known:
                self._new.add(bid)
        if not known:
            sealed = seal_blob(self.repo.aead, blob_type, bid, data)
            self._packer.add(blob_type, bid, sealed, len(data))
            with self._lock:
                self.stats.bytes_new += len(data)
                self.stats.blobs_new += 1
        if self.progress is not None and blob_type == BLOB_DATA:
            self.progress(len(data))
        return bid.hex()

    def _on_pack(self, pack_id: str, size: int, entries: list[list[Any]]) -> None:
        with self._lock:
            self._packs.append((pack_id, size, entries))
            batch = self._packs if len(self._packs) >= INDEX_EVERY else None
            if batch:
                self._packs = []
        if batch:
            self.repo.save_index(index_document(batch))

    # ---- commit --------------------------------------------------------------------------
    def _store_trees(self) -> str:
        """Serialise directories bottom-up as tree blobs; return the root tree id."""
        for path in sorted(self.dirs, key=lambda p: p.count("/") + bool(p), reverse=True):
            entries = self.dirs[path]
            names = sorted(entries)
            tree_id = self._same_tree(path, [entries[name] for name in names])
            if tree_id is None:
                nodes = [entries[name].to_dict() for name in names]
                raw = json.dumps({"nodes": nodes}, sort_keys=True,
                                 separators=(",", ":")).encode()
                tree_id = self.store_chunk(raw, BLOB_TREE)
            if path:
                parent, name = split_path(path)
                self.dirs[parent][name].subtree = tree_id
            else:
                root = tree_id
        return root

    def _same_tree(self, path: str, nodes: list[Node]) -> str | None:
        """The parent's tree id for ``path`` when ``nodes`` (sorted by name) equal its nodes
        and the repository still has it; else None."""
        base = self._base_trees.get(path)
        if base is None or bytes.fromhex(base[0]) not in self.repo.index:
            return None
        tree_id, old = base
        if len(old) != len(nodes):
            return None
        same = all(a is b or a == b for a, b in zip(nodes, old, strict=True))
        return tree_id if same else None

    def _checksum(self) -> str:
        """SHA-256 over the sorted logical listing (path, type, size, content hash or target)."""
        sha = hashlib.sha256()
        for path in sorted(self.dirs):
            for name in sorted(self.dirs[path]):
                node = self.dirs[path][name]
                full = f"{path}/{name}" if path else name
                # Names that are not UTF-8 carry their raw bytes as lone surrogates
                # (os.fsdecode); hash those bytes back, as the file system has them.
                sha.update(f"{full}\0{node.type}\0{node.size}\0{node.sha256 or node.target}\n"
                           .encode("utf-8", "surrogateescape"))
        return sha.hexdigest()

    def commit(self) -> Snapshot:
        """Store remaining packs, trees, the index, then the manifest: the snapshot exists."""
        try:
            self._packer.flush()
            root = self._store_trees()
            self._packer.flush()
            if self._packs:
                self.repo.save_index(index_document(self._packs))
                self._packs = []
            self.stats.bytes_stored = self._packer.bytes_stored
            self.stats.duration_s = round(time.monotonic() - self.started, 3)
            snap = Snapshot(
                time=datetime.now(UTC), host=socket.gethostname(), user=getpass.getuser(),
                source_name=self.source_name, source_kind=self.source_kind,
                kind=self.kind, parent=self.parent.id if self.parent else None, tags=self.tags,
                paths=self.paths, tree=root, stats=self.stats, checksum=self._checksum(),
                meta=self.meta)
            snap = self.repo.save_snapshot(snap)
        finally:
            self._done = True
            self._seal_pool.shutdown(wait=True, cancel_futures=True)
            self._packer.close()
            self._lockfile.release()
        audit.snapshot_written(self.repo, snap)
        return snap


class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if hasattr(self._rest, "readinto"):
            return self._rest.readinto(buf) or 0
        data = self._rest.read(len(buf))
        buf[:len(data)] = data
        return len(data)
