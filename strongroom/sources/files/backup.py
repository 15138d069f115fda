"""Back up files and directories into a snapshot.

Paths are stored under their absolute path without the leading '/', like restic. Incremental
and differential snapshots reuse the parent's node for files unchanged in size, mtime, ctime and
inode, without reading them; every snapshot is still complete on its own. Small files go to the
reader threads in batches; once 256 files are to be read, and where a fork is safe (the CLI),
those threads hand the small files on to worker processes (one per CPU) that read, chunk, hash,
compress and seal them, while this process walks, decides what is new, packs and stores trees
(see :mod:`strongroom.sources.files.reading`). Every entry keeps its owner, mode, times and
extended attributes (ACLs and capabilities included); fifos and devices are kept as nodes,
sparse files with their holes.

Memory stays bounded by the directories in progress, not the tree: each directory's tree blob
is stored as soon as it and its files are done (post-order), and the parent snapshot's nodes
are read one directory at a time, while it is walked.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import stat
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, IntegrityError, SourceError
from strongroom.repository import Node, Repository, Snapshot
from strongroom.repository.reader import SnapshotReader
from strongroom.repository.tree import decode_tree
from strongroom.repository.writer import SnapshotWriter
from strongroom.sources.files import reading
from strongroom.sources.files.forking import can_fork, is_rich_refresh, new_flag, process_count
from strongroom.sources.files.meta import read_xattrs, special_kind, stat_node
from strongroom.sources.files.patterns import excluded
from strongroom.sources.files.sparse import find_holes, maybe_sparse
from strongroom.sources.parent import choose_parent

WORKERS = 4
IN_FLIGHT = 64  # batches queued for the reader threads
BATCH_FILES = 32
BATCH_BYTES = 4 * 1024 * 1024
HOLD_NODES = 100_000  # entries of walked directories waiting on their files before we wait
PROCESS_MIN_FILES = 256  # fewer files to read: threads (forking workers costs more than it saves)
PROCESS_BATCH_FILES = 128  # to worker processes: fewer, larger hand-offs
PROCESS_FILE_MAX = 8 * 1024 * 1024  # larger files are read by this process's threads, in chunks
_KNOWN_THREADS = ("file-read", "seal", "pack-upload", "lock-lease", "blob-fetch",
                  "strongroom-first-pass")


@dataclass
class BackupResult:
    """The new snapshot, and the paths that could not be read (the snapshot lacks them)."""

    snapshot: Snapshot
    errors: list[str] = field(default_factory=list)


class _Backup:
    def __init__(self, writer: SnapshotWriter, parent: SnapshotReader | None,
                 excludes: list[str], skip_paths: set[str] | None = None,
                 stream: bool = True) -> None:
        self.w = writer
        self.parent = parent
        # older snapshots recorded no holes: their sparse-looking files are re-read
        self.parent_has_holes = bool(parent and parent.snap.meta.get("holes_recorded"))
        self.excludes = excludes
        self.skip_paths = skip_paths or set()
        self.errors: list[str] = []
        self.skipped: list[str] = []
        self.links: dict[tuple[int, int], Node | Future[Node]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="file-read")
        self.futures: deque[Future[Any]] = deque()
        self._batch: list[tuple[str, str, os.stat_result]] = []
        self._batch_bytes = 0
        self._batch_files = BATCH_FILES
        # Files are read by worker processes once PROCESS_MIN_FILES are to be read (and a fork
        # is safe here), else by threads; batches before that choice are held back.
        self._waiting: list[list[tuple[str, str, os.stat_result]]] = []
        self._waiting_files = 0
        self._started = False
        self._procs: ProcessPoolExecutor | None = None
        self._stop_procs: Any = None
        # Directory trees are stored as soon as a directory is walked and its files are in
        # (``stream``; not when roots overlap: a later root would add to a stored tree).
        self.stream = stream
        self._pending: dict[str, int] = {}  # directory -> its files not added yet
        self._walked: deque[tuple[str, int]] = deque()  # walked directories, post-order
        self._held = 0  # entries of those directories
        self._done = threading.Condition(self._lock)
        self._failure: BaseException | None = None
        # directory being walked -> its entries in the parent snapshot, by name
        self._old: dict[str, dict[str, Node]] = {}

    def error(self, path: str, exc: OSError, what: str = "") -> None:
        with self._lock:
            self.errors.append(f"{path}: {what}{exc.strerror or exc}")

    def xattrs(self, node: Node, where: str | int, path: str, follow: bool = False) -> Node:
        """Give ``node`` the extended attributes of ``where`` (a path or open fd); one that
        cannot be read is an error noted for the snapshot, not a reason to drop the entry."""
        try:
            node.xattrs = read_xattrs(where, follow)
        except OSError as exc:
            self.error(path, exc, "extended attributes: ")
        return node

    def _submit_batch(self, start: bool = False) -> None:
        """Hand the files gathered so far to a reader thread: one task per batch of small
        files, since a task per file costs more than reading a small one. ``start``: choose
        threads or processes now (held batches are never waited for)."""
        if self._batch:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            if self._started:
                self._dispatch(batch)
            else:
                self._waiting.append(batch)
                self._waiting_files += len(batch)
        if not self._started and (start or self._waiting_files >= PROCESS_MIN_FILES):
            self._start(self._waiting_files >= PROCESS_MIN_FILES and _can_fork())

    def _start(self, processes: bool) -> None:
        """Start reading: in worker processes (forked now, from this thread, before any
        thread of ours reads: they inherit the opened repository, its keys and index) or in
        this process's threads; then hand over the batches held until now."""
        self._started = True
        if processes:
            ctx = multiprocessing.get_context("fork")
            self._stop_procs = new_flag(ctx)
            self.w.repo.index  # noqa: B018 (loaded here, inherited by the workers)
            gc.freeze()  # the inherited objects stay shared: the collector does not touch them
            try:
                self._procs = ProcessPoolExecutor(
                    _process_count(), mp_context=ctx, initializer=reading.child_init,
                    initargs=(os.getpid(), self.w.repo, self._stop_procs))
                self._procs.submit(reading.ready).result()  # forks every worker here
            finally:
                gc.unfreeze()
            self._batch_files = PROCESS_BATCH_FILES
        held, self._waiting = self._waiting, []
        for batch in held:
            self._dispatch(batch)

    def _dispatch(self, batch: list[tuple[str, str, os.stat_result]]) -> None:
        self._slots.acquire()
        fut = self.pool.submit(self._files, batch)
        fut.add_done_callback(self._batch_done)
        self.futures.append(fut)
        while self.futures and self.futures[0].done():  # keep only those running
            self.futures.popleft().result()

    def _batch_done(self, fut: Future[Any]) -> None:
        self._slots.release()
        if not fut.cancelled() and fut.exception() is not None:
            with self._done:
                self._failure = fut.exception()
                self._done.notify_all()

    def _files(self, batch: list[tuple[str, str, os.stat_result]]) -> None:
        try:
            if self._procs is not None:
                self._files_in_worker(batch)
            else:
                for path, rel, st in batch:
                    self.file(path, rel, st)
        finally:  # every file of the batch is in (or failed, or abandoned on a failure)
            if self.stream:
                with self._done:
                    for _path, rel, _st in batch:
                        parent = rel.rpartition("/")[0]
                        left = self._pending[parent] - 1
                        if left:
                            self._pending[parent] = left
                        else:
                            del self._pending[parent]
                            self._done.notify_all()

    def _files_in_worker(self, batch: list[tuple[str, str, os.stat_result]]) -> None:
        """Small files of ``batch`` are read, hashed and sealed by a worker process while
        this thread reads the large ones (and hard links) itself; then the worker's blobs
        are stored (the dedup decision is this process's) and the nodes added."""
        assert self._procs is not None
        small = [item for item in batch if _for_worker(item[2])]
        fut = None
        if small:
            fut = self._procs.submit(reading.read_files, [
                (path, st.st_size, maybe_sparse(st)) for path, _rel, st in small])
        try:
            if len(small) < len(batch):
                for path, rel, st in batch:
                    if not _for_worker(st):
                        self.file(path, rel, st)
        finally:
            results = fut.result() if fut is not None else []
        ids = iter(self.w.add_sealed([chunk for _errors, data in results if data is not None
                                      for chunk in data[2]]))
        for (_path, rel, st), (errors, data) in zip(small, results, strict=True):
            if errors:
                with self._lock:
                    self.errors.extend(errors)
            if data is None:
                continue
            node = stat_node(st, "file")
            node.holes, node.xattrs, chunks, node.size, node.sha256 = data
            node.content = [next(ids) for _chunk in chunks]
            self.w.add_node(rel, node)

    def run(self, roots: list[Path]) -> None:
        try:
            for root in roots:
                self.add_parents(root)
                self.visit(root)
            self._submit_batch(start=True)
            for fut in self.futures:
                fut.result()
            self._finish_ready(wait=True)
        except BrokenProcessPool:
            self._stopping()
            raise SourceError("backup failed: a backup worker process died (out of memory?); "
                              "nothing was saved, run it again") from None
        except BaseException:
            self._stopping()
            raise
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            if self._procs is not None:
                self._procs.shutdown(wait=True, cancel_futures=True)

    def _stopping(self) -> None:
        """Ctrl-C or a failure: do not wait for big files to be read to the end, nor for the
        workers' queued batches."""
        self.w.stop_reading()
        if self._stop_procs is not None:
            self._stop_procs.set()

    def add_parents(self, root: Path) -> None:
        for anc in reversed(root.parents[:-1] if len(root.parents) > 1 else []):
            rel = str(anc).lstrip("/")
            if rel not in self.w.dirs:
                # stat, not lstat: a symlinked ancestor is recorded with its directory's mode
                # (a symlink's 0o777 would come back as a world-writable directory)
                node = self.xattrs(stat_node(os.stat(anc), "dir"), str(anc), str(anc),
                                   follow=True)
                self.w.add_node(rel, node)

    def visit(self, root: Path | str) -> None:
        """Walk ``root`` depth first in name order, with a stack rather than recursion:
        a tree deeper than Python's recursion limit is still a tree to back up. A directory's
        end (after all its entries) is a tuple on the stack."""
        root = str(root)
        stack: list[str | tuple[str, int]] = [root]
        while stack:
            path = stack.pop()
            if isinstance(path, tuple):
                self._walked_dir(*path)
                continue
            names = self._visit_one(path, path == root)
            if names is not None:
                stack.append((path, len(names)))
                stack.extend(os.path.join(path, name) for name in reversed(names))

    def _old_node(self, rel: str, is_root: bool) -> Node | None:
        """``rel``'s node in the parent snapshot, if any (from its directory's entries)."""
        if self.parent is None:
            return None
        if is_root:
            return self.parent.node_or_none(rel)
        parent, _, name = rel.rpartition("/")
        old = self._old.get(parent)
        return old.get(name) if old is not None else None

    def _parent_tree(self, tree_id: str, rel: str) -> list[Node]:
        """A tree of the parent snapshot, read once (not cached: each is needed once)."""
        try:
            return decode_tree(self.w.repo.load_blob(bytes.fromhex(tree_id), "T"))
        except IntegrityError as exc:
            raise IntegrityError(f"snapshot {self.parent.snap.short_id}: {rel or '/'}: "
                                 f"{exc}") from None

    def _visit_one(self, path: str, is_root: bool = False) -> list[str] | None:
        """Add one entry; return the names inside it if it is a directory, else None."""
        if path in self.skip_paths or (self.excludes and excluded(path, self.excludes)):
            return None
        rel = path.lstrip("/")
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.error(path, exc)
            return None
        if stat.S_ISDIR(st.st_mode):
            self.w.add_node(rel, self.xattrs(stat_node(st, "dir"), path, path))
            old = self._old_node(rel, is_root)
            if old is not None and old.type == "dir" and old.subtree:
                nodes = self._parent_tree(old.subtree, rel)
                self.w.base_tree(rel, old.subtree, nodes)
                self._old[rel] = {n.name: n for n in nodes}
            try:
                return sorted(os.listdir(path))
            except OSError as exc:
                self.error(path, exc)
                return []
        elif stat.S_ISLNK(st.st_mode):
            node = self.xattrs(stat_node(st, "symlink"), path, path)
            node.target = os.readlink(path)
            self.w.add_node(rel, node)
        elif stat.S_ISREG(st.st_mode):
            if not self.unchanged(path, rel, st, self._old_node(rel, is_root)):
                if self.stream:
                    parent = rel.rpartition("/")[0]
                    with self._lock:
                        self._pending[parent] = self._pending.get(parent, 0) + 1
                self._batch.append((path, rel, st))
                self._batch_bytes += st.st_size
                if len(self._batch) >= self._batch_files or self._batch_bytes >= BATCH_BYTES:
                    self._submit_batch()
        elif kind := special_kind(st.st_mode):  # fifo, character or block device
            self.w.add_node(rel, self.xattrs(stat_node(st, kind), path, path))
        else:  # sockets are made by their servers, not restored: noted, not an error
            with self._lock:
                self.skipped.append(path)
        return None

    def _walked_dir(self, path: str, entries: int) -> None:
        """Every entry of directory ``path`` was visited: its tree is stored once its files
        are in (those of earlier directories first)."""
        rel = path.lstrip("/")
        self._old.pop(rel, None)
        if not self.stream:
            return
        self._walked.append((rel, entries))
        self._held += entries
        self._finish_ready()

    def _finish_ready(self, wait: bool = False) -> None:
        """Store the trees of walked directories whose files are all in, in walk order (a
        directory after those under it). Waits for the oldest one's files when ``wait`` or
        when too many entries are held."""
        while self._walked:
            rel, entries = self._walked[0]
            if self._pending.get(rel):
                if not wait and self._held <= HOLD_NODES:
                    return
                # its last files may be in the batch being gathered, or held
                self._submit_batch(start=True)
                with self._done:
                    while self._pending.get(rel) and self._failure is None:
                        self._done.wait(1.0)
                    if self._failure is not None:
                        raise self._failure
            self._walked.popleft()
            self._held -= entries
            self.w.finish_dir(rel)

    def unchanged(self, path: str, rel: str, st: os.stat_result, old: Node | None) -> bool:
        """Reuse the parent's node ``old`` when size, mtime, ctime and inode are unchanged
        (and a possibly sparse file has its holes recorded: older snapshots did not)."""
        if (old is None or old.type != "file" or old.size != st.st_size
                or old.mtime_ns != st.st_mtime_ns or old.ctime_ns != st.st_ctime_ns
                or old.inode != st.st_ino
                or (not self.parent_has_holes and maybe_sparse(st))):
            return False
        index = self.w.repo.index
        if not all(bytes.fromhex(bid) in index for bid in old.content):
            return False  # its data is gone from the repository: read the file again
        if (old.dev == st.st_dev and old.nlink == st.st_nlink and old.uid == st.st_uid
                and old.gid == st.st_gid and old.mode == stat.S_IMODE(st.st_mode)):
            # an unchanged ctime means unchanged owner, mode and extended attributes too:
            # the parent's node as it is (no listxattr, and its tree can be reused whole)
            self.w.add_node(rel, old)
            return True
        node = self.xattrs(stat_node(st, "file"), path, path)
        node.content, node.sha256, node.holes = old.content, old.sha256, old.holes
        self.w.add_node(rel, node)
        return True

    def file(self, path: str, rel: str, st: os.stat_result) -> None:
        node = stat_node(st, "file")
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            with self._lock:
                first = self.links.get(key)
                if first is None:
                    self.links[key] = node
            if first is not None and first.sha256:
                node.content, node.sha256, node.size = first.content, first.sha256, first.size
                node.holes, node.xattrs = first.holes, first.xattrs  # the same inode
                self.w.add_node(rel, node)
                return
        try:
            with open(path, "rb", buffering=0) as fh:
                if maybe_sparse(st):
                    node.holes = find_holes(fh.fileno(), st.st_size)
                self.xattrs(node, fh.fileno(), path)
                node.content, node.size, node.sha256 = self.w.store_stream(fh)
        except OSError as exc:
            self.error(str(path), exc)
            return
        self.w.add_node(rel, node)


def backup_files(repo: Repository, paths: list[str | Path], name: str | None = None,
                 kind: str = "full", tags: list[str] | None = None,
                 excludes: list[str] | None = None,
                 progress: Callable[[int], None] | None = None) -> BackupResult:
    """Back up ``paths`` as one snapshot of source ``name`` (default: the first path)."""
    roots = []
    for p in paths:
        # abspath, not Path.absolute(): '..' and '.' must not reach the snapshot's paths
        root = Path(os.path.abspath(Path(p).expanduser()))
        if not root.exists() and not root.is_symlink():
            raise SourceError(f"cannot read {p}: no such file or directory")
        if root == Path("/"):
            raise ConfigError("backing up / as a whole is not supported; name directories")
        roots.append(root)
    if not roots:
        raise ConfigError("no paths to back up")
    name = name or str(roots[0])
    parent = choose_parent(repo, name, kind)
    if kind != "full" and parent is None:
        kind = "full"  # nothing to compare with: this run reads everything
    with repo.writer(name, "files", kind, parent, tags or [], [str(r) for r in roots],
                     progress) as w:
        # A local repository inside a backed-up folder would back itself up, growing each run.
        own = {str(Path(repo.backend.url).resolve())} if repo.backend.kind == "local" else set()
        # overlapping roots would add to a directory whose tree is stored: trees at the end
        overlap = len(set(roots)) < len(roots) or any(a in b.parents for a in roots for b in roots)
        job = _Backup(w, repo.reader(parent) if parent else None, excludes or [], own,
                      stream=not overlap)
        job.run(roots)
        w.set_meta({"holes_recorded": True})
        if job.errors:
            w.set_meta({"errors": job.errors[:1000], "error_count": len(job.errors)})
        if job.skipped:
            w.set_meta({"skipped_special": job.skipped[:1000],
                        "skipped_special_count": len(job.skipped)})
        snap = w.commit()
    return BackupResult(snap, job.errors)


def _for_worker(st: os.stat_result) -> bool:
    """A file a worker process reads whole: small, with one link (large files are read here in
    chunks; hard links here, where later links reuse the first one's content unread)."""
    return st.st_size < PROCESS_FILE_MAX and st.st_nlink == 1


def _known_thread(thread: threading.Thread) -> bool:
    return thread.name.startswith(_KNOWN_THREADS) or is_rich_refresh(thread)


def _can_fork() -> bool:
    """Worker processes only where every other thread is known (the CLI's): see forking."""
    return can_fork(_known_thread)


def _process_count() -> int:
    return process_count()
