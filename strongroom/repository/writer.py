"""Writing a snapshot: chunk, hash, dedupe, seal, pack; then trees, index and manifest last."""

from __future__ import annotations

import getpass
import hashlib
import io
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import zstandard
from pyfastcdc.cy import FastCDC

from strongroom import audit
from strongroom.clock import ClockReading
from strongroom.errors import StrongroomError
from strongroom.hostid import host_id
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
from strongroom.repository.presence import (
    confirm_held,
    index_of_stored_packs,
    save_while_held,
)
from strongroom.repository.tree import encode_tree

if TYPE_CHECKING:
    from strongroom.repository.repo import Repository

SEAL_WORKERS = max(2, os.cpu_count() or 2)
SEAL_WINDOW = 2 * SEAL_WORKERS  # chunks of one stream hashed, compressed, sealed in parallel
INDEX_EVERY = 32  # packs per intermediate index file, so long backups leave reusable data
INDEX_BLOBS = 65536  # ...or fewer when they hold this many blobs (many small files)


def new_chunker(seed: int) -> FastCDC:
    """The content-defined chunker of a repository whose chunker seed is ``seed``."""
    return FastCDC(CHUNK_AVG - CHUNK_MIN, min_size=CHUNK_MIN, max_size=CHUNK_MAX, seed=seed)


def split_path(path: str) -> tuple[str, str]:
    path = path.strip("/")
    framed = f"/{path}/"  # an empty, "." or ".." component shows as "//", "/./" or "/../"
    if not path or "//" in framed or "/./" in framed or "/../" in framed:
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
        # counted per entry in plain integers (a pydantic field assignment costs more than
        # the rest of an unchanged file's bookkeeping); into ``stats`` at commit
        self._files = self._dirs = self._bytes_total = 0
        self.started = time.monotonic()
        self.dirs: dict[str, dict[str, Node]] = {"": {}}
        # path -> its tree id and nodes in the parent snapshot
        self._base_trees: dict[str, tuple[str, list[Node]]] = {}
        # directories whose tree is stored already (finish_dir): their nodes are let go, their
        # lines of the snapshot checksum kept compressed
        self._finished: set[str] = set()
        self._sums: dict[str, bytes] = {}
        self._zstd = zstandard.ZstdCompressor(level=1)
        self._lock = threading.Lock()
        self._new: set[bytes] = set()
        # What the snapshot relies on, confirmed present before the manifest: the packs its
        # deduplicated blobs are read from and its own; or, once it reuses content it did not
        # store itself (a parent's nodes or trees), every pack the index names.
        self._relied: set[str] = set()
        self._reuses_foreign = False
        self._packs: list[tuple[str, int, list[list[Any]]]] = []
        self._packs_blobs = 0
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
            # a prune may have removed packs since the index was loaded; a pack that is gone
            # is never deduplicated against, so this snapshot restores even if older ones
            # cannot
            index_of_stored_packs(repo)
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
            if path in self._finished:
                raise StrongroomError(f"{path}: directory added to after its tree was stored")
            name = split_path(path)[1]
            entries.setdefault(name, Node(name=name, type="dir", mode=0o755))
            entries = self.dirs[path] = {}
        return entries

    def add_node(self, path: str, node: Node) -> Node:
        """Place a node (new, or reused unchanged from the parent snapshot) at ``path``."""
        if node.content or node.subtree:
            self._reuses_foreign = True  # blobs this writer never looked up
        return self._place(path, node)

    def _place(self, path: str, node: Node) -> Node:
        parent, name = split_path(path)
        node.name = name
        with self._lock:
            if node.type == "dir":
                self._ensure_dir(path)
                self._dirs += 1
            else:
                self._files += 1
                self._bytes_total += node.size
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
        return self._place(path, node)

    def add_bytes(self, path: str, data: bytes, **kwargs: Any) -> Node:
        return self.add_stream(path, io.BytesIO(data), **kwargs)

    def base_tree(self, path: str, tree_id: str, nodes: list[Node]) -> None:
        """Name directory ``path``'s tree (and its nodes) in the parent snapshot: if its nodes
        come out equal, that tree is reused as it is instead of being serialised and hashed
        again (the nodes are kept, so nothing is decoded twice)."""
        self._base_trees[path.strip("/")] = (tree_id, nodes)

    def finish_dir(self, path: str) -> None:
        """Store directory ``path``'s tree now and let its nodes go: nothing more will be
        added under it, and every directory under it is finished (or has no tree yet, then it
        is stored first). Keeps memory bounded by the directories in progress, not the whole
        snapshot (a million files)."""
        path = path.strip("/")
        if not path:
            raise StrongroomError("the root directory is stored by commit()")
        with self._lock:
            entries = self.dirs[path]
            pending = [f"{path}/{name}" for name, node in entries.items()
                       if node.type == "dir" and f"{path}/{name}" in self.dirs]
        for sub in pending:  # e.g. a directory skipped by the caller: finished with its parent
            self._finish_below(sub)
        with self._lock:
            del self.dirs[path]
            self._finished.add(path)
        tree_id = self._tree_id(path, entries)
        self._sums[path] = self._zstd.compress(self._sum_lines(path, entries))
        parent, name = split_path(path)
        with self._lock:
            self.dirs[parent][name].subtree = tree_id

    def _finish_below(self, path: str) -> None:
        subs = sorted((p for p in self.dirs if p.startswith(path + "/")),
                      key=lambda p: p.count("/"), reverse=True)
        for sub in [*subs, path]:
            self.finish_dir(sub)

    def set_meta(self, meta: dict[str, Any]) -> None:
        """Source-specific facts for the manifest (counts, checksums, positions)."""
        self.meta.update(meta)

    # ---- content -------------------------------------------------------------------------
    def _chunker(self) -> FastCDC:
        cdc = getattr(self._local, "cdc", None)
        if cdc is None:
            cdc = self._local.cdc = new_chunker(self.repo.chunker_seed)
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
            known = bid in self._new
            if not known:
                loc = self.repo.index.get(bid)
                known = loc is not None
                if loc is not None:
                    self._relied.add(loc.pack)
                else:
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

    def add_sealed(self, chunks: list[tuple[bytes, bytes | None, int]]) -> list[str]:
        """Store data blobs hashed and sealed elsewhere (a backup worker process), given as
        ``(blob id, sealed blob, length)``, unless the repository has them; ``sealed`` is None
        for one already in the index the worker had. The dedup decision stays here, so each
        blob is stored once. Returns their ids (hex), in order."""
        new = []
        read = 0
        with self._lock:
            index = self.repo.index
            for bid, sealed, length in chunks:
                read += length
                if bid in self._new:
                    continue
                loc = index.get(bid)
                if loc is not None:
                    self._relied.add(loc.pack)
                elif sealed is not None:
                    self._new.add(bid)
                    new.append((bid, sealed, length))
                else:
                    self._reuses_foreign = True  # the worker's index had it, ours does not
            self.stats.bytes_read += read
        for bid, sealed, length in new:
            self._packer.add(BLOB_DATA, bid, sealed, length)
        if new:
            with self._lock:
                self.stats.bytes_new += sum(length for _bid, _sealed, length in new)
                self.stats.blobs_new += len(new)
        if self.progress is not None and read:
            self.progress(read)
        return [bid.hex() for bid, _sealed, _length in chunks]

    def _on_pack(self, pack_id: str, size: int, entries: list[list[Any]]) -> None:
        with self._lock:
            self._packs.append((pack_id, size, entries))
            self._relied.add(pack_id)
            self._packs_blobs += len(entries)
            batch = None
            if len(self._packs) >= INDEX_EVERY or self._packs_blobs >= INDEX_BLOBS:
                batch, self._packs, self._packs_blobs = self._packs, [], 0
        if batch:
            self._save_index(batch)

    def _save_index(self, batch: list[tuple[str, int, list[list[Any]]]]) -> None:
        """Store an index file; its blobs are then known from the repository's index, and
        no longer need a place among this writer's own new blobs (memory). Never once the
        lock is lost: a prune may have swept these packs as unindexed garbage."""
        self._lockfile.ensure_held()
        self.repo.save_index(index_document(batch))
        indexed = [bytes.fromhex(entry[1]) for _pid, _size, entries in batch
                   for entry in entries]
        with self._lock:
            self._new.difference_update(indexed)

    # ---- commit --------------------------------------------------------------------------
    def _tree_id(self, path: str, entries: dict[str, Node]) -> str:
        """Store a directory's tree blob (or reuse the parent's equal one); its id."""
        nodes = [entries[name] for name in sorted(entries)]
        tree_id = self._same_tree(path, nodes)
        self._base_trees.pop(path, None)
        if tree_id is None:
            tree_id = self.store_chunk(encode_tree(nodes), BLOB_TREE)
        return tree_id

    def _store_trees(self) -> str:
        """Serialise the directories not finished yet bottom-up as tree blobs; return the
        root tree id."""
        for path in sorted(self.dirs, key=lambda p: p.count("/") + bool(p), reverse=True):
            tree_id = self._tree_id(path, self.dirs[path])
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
        if same:
            self._reuses_foreign = True  # the parent's subtree, blobs never looked up here
        return tree_id if same else None

    @staticmethod
    def _sum_lines(path: str, entries: dict[str, Node]) -> bytes:
        """One directory's part of the snapshot checksum: a line per entry, sorted by name."""
        prefix = f"{path}/" if path else ""
        # Names that are not UTF-8 carry their raw bytes as lone surrogates (os.fsdecode);
        # hash those bytes back, as the file system has them.
        return "".join(
            f"{prefix}{name}\0{node.type}\0{node.size}\0{node.sha256 or node.target}\n"
            for name, node in sorted(entries.items())).encode("utf-8", "surrogateescape")

    def _checksum(self) -> str:
        """SHA-256 over the sorted logical listing (path, type, size, content hash or target):
        directories in path order, each one's entries in name order."""
        sha = hashlib.sha256()
        unzip = zstandard.ZstdDecompressor()
        for path in sorted([*self.dirs, *self._sums]):
            if path in self._sums:
                sha.update(unzip.decompress(self._sums[path]))
            else:
                sha.update(self._sum_lines(path, self.dirs[path]))
        return sha.hexdigest()

    def _relied_packs(self) -> set[str]:
        """The packs this snapshot relies on (see ``_relied``)."""
        return set(self.repo.index.packs) if self._reuses_foreign else set(self._relied)

    def _confirm_before_commit(self, relied: set[str]) -> datetime:
        """Before the manifest: the lock is still ours, every pack in ``relied`` is still in
        storage, and this host's clock agrees with the storage's (a snapshot dated in the
        future would pass for the newest and decide retention). Returns the storage's time,
        recorded as the arrival."""
        confirm_held(self._lockfile, self.repo.backend, relied,
                     f"the backup of {self.source_name}")
        reading = ClockReading.read(self.repo.backend)
        reading.require_agreement(f"date a snapshot of {self.source_name}")
        self._lockfile.ensure_held()
        return datetime.fromtimestamp(reading.storage, UTC)

    def commit(self) -> Snapshot:
        """Store remaining packs, trees, the index, then the manifest: the snapshot exists."""
        try:
            self._packer.flush()
            root = self._store_trees()
            self._packer.flush()
            if self._packs:
                self._save_index(self._packs)
                self._packs, self._packs_blobs = [], 0
            self.stats.files, self.stats.dirs = self._files, self._dirs
            self.stats.bytes_total = self._bytes_total
            self.stats.bytes_stored = self._packer.bytes_stored
            self.stats.duration_s = round(time.monotonic() - self.started, 3)
            relied = self._relied_packs()
            arrived = self._confirm_before_commit(relied)
            snap = Snapshot(
                time=datetime.fromtimestamp(time.time(), UTC), host=socket.gethostname(),
                host_id=host_id(), user=getpass.getuser(),
                source_name=self.source_name, source_kind=self.source_kind,
                kind=self.kind, parent=self.parent.id if self.parent else None, tags=self.tags,
                paths=self.paths, tree=root, stats=self.stats, checksum=self._checksum(),
                meta=self.meta, arrived=arrived)
            snap = save_while_held(self.repo, self._lockfile, snap, relied)
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
