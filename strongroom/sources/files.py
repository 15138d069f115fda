"""Files and directories: back up paths into a snapshot and restore them with their metadata.

Paths are stored under their absolute path without the leading '/', like restic. Incremental
and differential snapshots reuse the parent's node for files unchanged in size, mtime, ctime and
inode, without reading them; every snapshot is still complete on its own.
"""

from __future__ import annotations

import fnmatch
import functools
import grp
import os
import pwd
import stat
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.errors import (
    ConfigError,
    SourceError,
    StorageError,
    StrongroomError,
    TargetNotEmpty,
)
from strongroom.repository import Node, Repository, Snapshot
from strongroom.repository.reader import SnapshotReader
from strongroom.repository.writer import SnapshotWriter
from strongroom.sources.registry import register_restorer

WORKERS = 4
IN_FLIGHT = 64  # batches queued for the reader threads
BATCH_FILES = 32
BATCH_BYTES = 4 * 1024 * 1024


@dataclass
class BackupResult:
    snapshot: Snapshot
    errors: list[str] = field(default_factory=list)


def choose_parent(repo: Repository, name: str, kind: str) -> Snapshot | None:
    """incremental: latest snapshot of the source; differential: latest full; full: none."""
    if kind == "full":
        return None
    if kind == "incremental":
        return repo.latest_snapshot(name)
    if kind == "differential":
        return repo.latest_snapshot(name, kind="full")
    raise ConfigError(f"unknown snapshot kind {kind!r} (full, incremental or differential)")


@functools.lru_cache(maxsize=1024)
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.lru_cache(maxsize=1024)
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def _stat_node(st: os.stat_result, kind: str) -> Node:
    return Node(name="", type=kind, mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns,
                ctime_ns=st.st_ctime_ns, uid=st.st_uid, gid=st.st_gid, user=_user(st.st_uid),
                group=_group(st.st_gid),
                inode=st.st_ino, dev=st.st_dev, nlink=st.st_nlink,
                size=st.st_size if kind == "file" else 0)


def _excluded(path: str, patterns: list[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


class _Backup:
    def __init__(self, writer: SnapshotWriter, parent: SnapshotReader | None,
                 excludes: list[str], skip_paths: set[str] | None = None) -> None:
        self.w = writer
        self.parent = parent
        self.excludes = excludes
        self.skip_paths = skip_paths or set()
        self.errors: list[str] = []
        self.skipped: list[str] = []
        self.links: dict[tuple[int, int], Node | Future[Node]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="file-read")
        self.futures: list[Future[Any]] = []
        self._batch: list[tuple[str, str, os.stat_result]] = []
        self._batch_bytes = 0

    def error(self, path: str, exc: OSError) -> None:
        with self._lock:
            self.errors.append(f"{path}: {exc.strerror or exc}")

    def _submit_batch(self) -> None:
        """Hand the files gathered so far to a reader thread: one task per batch of small
        files, since a task per file costs more than reading a small one."""
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self._slots.acquire()
        fut = self.pool.submit(self._files, batch)
        fut.add_done_callback(lambda _f: self._slots.release())
        self.futures.append(fut)

    def _files(self, batch: list[tuple[str, str, os.stat_result]]) -> None:
        for path, rel, st in batch:
            self.file(path, rel, st)

    def run(self, roots: list[Path]) -> None:
        try:
            for root in roots:
                self.add_parents(root)
                self.visit(root)
            self._submit_batch()
            for fut in self.futures:
                fut.result()
        except BaseException:
            self.w.stop_reading()  # Ctrl-C: do not wait for big files to be read to the end
            raise
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def add_parents(self, root: Path) -> None:
        for anc in reversed(root.parents[:-1] if len(root.parents) > 1 else []):
            rel = str(anc).lstrip("/")
            if rel not in self.w.dirs:
                # stat, not lstat: a symlinked ancestor is recorded with its directory's mode
                # (a symlink's 0o777 would come back as a world-writable directory)
                self.w.add_node(rel, _stat_node(os.stat(anc), "dir"))

    def visit(self, root: Path | str) -> None:
        """Walk ``root`` depth first in name order, with a stack rather than recursion:
        a tree deeper than Python's recursion limit is still a tree to back up."""
        stack = [str(root)]
        while stack:
            path = stack.pop()
            names = self._visit_one(path)
            stack.extend(os.path.join(path, name) for name in reversed(names))

    def _visit_one(self, path: str) -> list[str]:
        """Add one entry; return the names inside it if it is a directory."""
        if path in self.skip_paths or _excluded(path, self.excludes):
            return []
        rel = path.lstrip("/")
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.error(path, exc)
            return []
        if stat.S_ISDIR(st.st_mode):
            self.w.add_node(rel, _stat_node(st, "dir"))
            try:
                return sorted(os.listdir(path))
            except OSError as exc:
                self.error(path, exc)
        elif stat.S_ISLNK(st.st_mode):
            node = _stat_node(st, "symlink")
            node.target = os.readlink(path)
            self.w.add_node(rel, node)
        elif stat.S_ISREG(st.st_mode):
            if not self.unchanged(rel, st):
                self._batch.append((path, rel, st))
                self._batch_bytes += st.st_size
                if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
                    self._submit_batch()
        else:  # devices, sockets and fifos hold no data to keep: noted, not an error
            with self._lock:
                self.skipped.append(path)
        return []

    def unchanged(self, rel: str, st: os.stat_result) -> bool:
        """Reuse the parent's node when size, mtime, ctime and inode are unchanged."""
        if self.parent is None:
            return False
        old = self.parent.node_or_none(rel)
        if (old is None or old.type != "file" or old.size != st.st_size
                or old.mtime_ns != st.st_mtime_ns or old.ctime_ns != st.st_ctime_ns
                or old.inode != st.st_ino):
            return False
        index = self.w.repo.index
        if not all(bytes.fromhex(bid) in index for bid in old.content):
            return False  # its data is gone from the repository: read the file again
        node = _stat_node(st, "file")
        node.content, node.sha256 = old.content, old.sha256
        self.w.add_node(rel, node)
        return True

    def file(self, path: str, rel: str, st: os.stat_result) -> None:
        node = _stat_node(st, "file")
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            with self._lock:
                first = self.links.get(key)
                if first is None:
                    self.links[key] = node
            if first is not None and first.sha256:
                node.content, node.sha256, node.size = first.content, first.sha256, first.size
                self.w.add_node(rel, node)
                return
        try:
            with open(path, "rb", buffering=0) as fh:
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
        job = _Backup(w, repo.reader(parent) if parent else None, excludes or [], own)
        job.run(roots)
        if job.errors:
            w.set_meta({"errors": job.errors[:1000], "error_count": len(job.errors)})
        if job.skipped:
            w.set_meta({"skipped_special": job.skipped[:1000],
                        "skipped_special_count": len(job.skipped)})
        snap = w.commit()
    return BackupResult(snap, job.errors)


# ---- restore ------------------------------------------------------------------------------

def _included(path: str, includes: list[str]) -> bool:
    if not includes:
        return True
    for inc in includes:
        inc = inc.strip("/")
        if not inc or path == inc or path.startswith(inc + "/") or inc.startswith(path + "/"):
            return True
    return False


def _apply_meta(path: Path, node: Node, as_root: bool) -> None:
    if as_root and node.uid is not None:
        os.lchown(path, node.uid, node.gid if node.gid is not None else -1)
    if node.type != "symlink":
        os.chmod(path, node.mode)
    os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)


def restore_files(repo: Repository, snap: Snapshot, target: str | Path,
                  includes: list[str] | None = None, replace: bool = False,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Restore a files snapshot under ``target``; every file is verified before it appears."""
    target = Path(target).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise TargetNotEmpty(f"restore target {target} exists and is not a directory")
    if target.exists() and any(target.iterdir()) and not replace:
        raise TargetNotEmpty(f"restore target {target} is not empty (use an empty directory)")
    if target.is_symlink() and not target.exists():
        raise TargetNotEmpty(f"restore target {target} is a symlink to nothing")
    reader = repo.reader(snap)
    includes = includes or []
    for inc in includes:  # a mistyped --include must not "restore" nothing successfully
        if inc.strip("/"):
            reader.node(inc)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create restore target {target}: {exc.strerror}") from None
    as_root = os.geteuid() == 0
    dirs: list[tuple[Path, Node]] = []
    links: dict[tuple[int, int], Path] = {}
    files = 0
    total = 0
    try:
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="restore") as pool:
            futures = []
            for rel, node in reader.walk():
                if not _included(rel, includes):
                    continue
                dest = target / rel
                _make_room(dest, node)
                if node.type == "dir":
                    dest.mkdir(exist_ok=True)
                    dirs.append((dest, node))
                elif node.type == "symlink":
                    os.symlink(node.target, dest)
                    _apply_meta(dest, node, as_root)
                elif node.nlink > 1 and (node.dev, node.inode) in links:
                    futures.append((links[(node.dev, node.inode)], dest, None))
                else:
                    if node.nlink > 1:
                        links[(node.dev, node.inode)] = dest
                    futures.append((dest, None, pool.submit(_write_file, reader, rel, node,
                                                            dest, as_root, progress)))
                    files += 1
                    total += node.size
            for _first, _dest, fut in futures:
                if fut is not None:
                    fut.result()
            for first, dest, fut in futures:
                if fut is None:
                    os.link(first, dest)
    except StrongroomError as exc:
        raise type(exc)(f"{exc}; restore stopped: files already written to {target} are "
                        "verified, re-run with --replace once the cause is fixed") from None
    except OSError as exc:
        raise StorageError(f"restore into {target} failed: {exc.filename}: {exc.strerror}; "
                           "re-run with --replace once the cause is fixed") from None
    for dest, node in reversed(dirs):
        _apply_meta(dest, node, as_root)
    return {"snapshot": snap.id, "target": str(target), "files": files, "bytes": total}


def _make_room(dest: Path, node: Node) -> None:
    """Remove what a previous (partial) restore left where ``node`` goes, but never a
    directory's contents, and never follow a symlink out of the target."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        dest.unlink()
    elif dest.is_dir() and node.type != "dir":
        raise TargetNotEmpty(f"{dest} is a directory in the target but a {node.type} in the "
                             "snapshot; move it away first")


def _write_file(reader: SnapshotReader, rel: str, node: Node, dest: Path, as_root: bool,
                progress: Callable[[int], None] | None) -> None:
    # A fresh short name, created exclusively: it fits beside a 255-byte name, and no entry
    # of the snapshot (a symlink or file named like it) is ever followed or clobbered.
    fd, name = tempfile.mkstemp(prefix=".", suffix=".strongroom-partial", dir=dest.parent)
    tmp = Path(name)
    try:
        with open(fd, "wb") as out:
            for chunk in reader.chunks(node, rel):
                out.write(chunk)
                if progress:
                    progress(len(chunk))
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:  # a failed write (disk full, file too large) names no file
            raise OSError(exc.errno, exc.strerror, str(dest)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _apply_meta(dest, node, as_root)


def _restore_entry(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                   include: list[str] | None = None, options: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    progress = (options or {}).get("progress")
    return restore_files(repo, snap, target, include, replace, progress)


register_restorer("files", _restore_entry)

__all__ = ["backup_files", "restore_files", "choose_parent", "BackupResult"]
