"""Restore a files snapshot under a directory; every file is verified before it appears.

A file is written to a fresh temporary name beside its place and renamed over it only when
all its blobs were read and checked; directories get their metadata last (after their
children are written). Fifos and devices are made with mknod, sparse files get their holes
back. What a non-root restore cannot apply (owners, devices, some attributes) is counted in the
report (``not_restored_owner``, ``_devices``, ``_xattrs``, ``_acls``, ``_capabilities``,
``_mode``) and summed up in one warning, not a failure.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, StorageError, StrongroomError, TargetNotEmpty
from strongroom.repository import Node, Repository, Snapshot
from strongroom.repository.reader import SnapshotReader
from strongroom.sources.files.meta import MetaApplier
from strongroom.sources.files.patterns import included
from strongroom.sources.files.sparse import write_sparse

WORKERS = 4
BATCH_FILES = 32  # small files handed to a worker at once
BATCH_BYTES = 4 * 1024 * 1024
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DEVICE_TYPES = {"fifo": stat.S_IFIFO, "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK}
log = logging.getLogger("strongroom")


def restore_files(repo: Repository, snap: Snapshot, target: str | Path,
                  includes: list[str] | None = None, replace: bool = False,
                  progress: Callable[[int], None] | None = None, *,
                  numeric_owner: bool = False) -> dict[str, Any]:
    """Restore a files snapshot under ``target``; every file is verified before it appears.
    Owners map by user/group name when the name exists here, else by number; with
    ``numeric_owner`` by number only."""
    target = Path(target).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise TargetNotEmpty(f"restore target {target} exists and is not a directory")
    fresh = not target.exists() or not any(target.iterdir())
    if not fresh and not replace:
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
    meta = MetaApplier(numeric_owner)
    names = _TempNames()
    dirs: list[tuple[str, Node]] = []
    links: dict[tuple[int, int], str] = {}
    hardlinks: list[tuple[str, str]] = []
    root = str(target)
    files = 0
    total = 0
    try:
        with reader.pool(WORKERS, "restore") as pool:  # Ctrl-C: stop at the next chunk
            futures = []
            batch: list[tuple[str, Node, str]] = []
            batch_bytes = 0
            for rel, node in reader.walk():
                if not included(rel, includes):
                    continue
                dest = f"{root}/{rel}"
                if not fresh:  # an empty target holds nothing to make room from
                    _make_room(dest, node)
                if node.type == "dir":
                    _mkdir(dest)
                    dirs.append((dest, node))
                elif node.type == "symlink":
                    os.symlink(node.target, dest)
                    meta.apply(dest, node)
                elif node.nlink > 1 and (node.dev, node.inode) in links:
                    hardlinks.append((links[(node.dev, node.inode)], dest))
                elif node.type in _DEVICE_TYPES:
                    if _make_special(dest, node, meta):
                        if node.nlink > 1:
                            links[(node.dev, node.inode)] = dest
                        meta.apply(dest, node)
                else:
                    if node.nlink > 1:
                        links[(node.dev, node.inode)] = dest
                    # small files go to the workers in batches: a task per file costs more
                    # than writing a small one
                    batch.append((rel, node, dest))
                    batch_bytes += node.size
                    if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                        futures.append(pool.submit(_write_files, reader, batch, meta, progress,
                                                   names))
                        batch, batch_bytes = [], 0
                    files += 1
                    total += node.size
            if batch:
                futures.append(pool.submit(_write_files, reader, batch, meta, progress, names))
            for fut in futures:
                fut.result()
            for first, dest in hardlinks:
                os.link(first, dest)
        for dest, node in reversed(dirs):  # after their children: times and modes hold
            meta.apply(dest, node)
    except StrongroomError as exc:
        raise type(exc)(f"{exc}; restore stopped: files already written to {target} are "
                        "verified, re-run with --replace once the cause is fixed") from None
    except OSError as exc:
        raise StorageError(f"restore into {target} failed: {exc.filename}: {exc.strerror}; "
                           "re-run with --replace once the cause is fixed") from None
    report: dict[str, Any] = {"snapshot": snap.id, "target": str(target), "files": files,
                              "bytes": total}
    if meta.shortfall.counts:
        # flat counts: reports of recovery flows keep only plain values
        report |= {f"not_restored_{k}": n for k, n in sorted(meta.shortfall.counts.items())}
        log.warning("warning: %s", meta.shortfall.summary())
    return report


def _make_special(dest: Path, node: Node, meta: MetaApplier) -> bool:
    """Make a fifo or device node; False (counted) when not allowed, as a non-root user is
    not for devices."""
    dev = os.makedev(node.rdev_major, node.rdev_minor) if node.type != "fifo" else 0
    try:
        os.mknod(dest, _DEVICE_TYPES[node.type] | (node.mode & 0o777), dev)
    except PermissionError as exc:
        meta.shortfall.add("devices", dest, f"{node.type}: {exc.strerror}")
        return False
    return True


def _make_room(dest: str, node: Node) -> None:
    """Remove what a previous (partial) restore left where ``node`` goes, but never a
    directory's contents, and never follow a symlink out of the target (one ``lstat``)."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(dest)
    elif node.type != "dir":
        raise TargetNotEmpty(f"{dest} is a directory in the target but a {node.type} in the "
                             "snapshot; move it away first")


def _mkdir(dest: str) -> None:
    try:
        os.mkdir(dest)
    except FileExistsError:
        if not os.path.isdir(dest):
            raise


class _TempNames:
    """Short temporary names, unique per restore (a random stem and a counter): they fit
    beside a 255-byte name and never meet an entry of the snapshot by chance."""

    def __init__(self) -> None:
        self._stem = os.urandom(6).hex()
        self._next = itertools.count()

    def __call__(self) -> str:
        return f".{self._stem}{next(self._next):x}.strongroom-partial"


def _create_temp(parent: str, names: _TempNames) -> tuple[int, str]:
    """Create a fresh temporary file exclusively (never following or clobbering anything)."""
    for _ in range(100):
        tmp = f"{parent}/{names()}"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", parent)


def _write_files(reader: SnapshotReader, batch: list[tuple[str, Node, str]], meta: MetaApplier,
                 progress: Callable[[int], None] | None, names: _TempNames) -> None:
    for rel, node, dest in batch:
        _write_file(reader, rel, node, dest, meta, progress, names)


def _write_file(reader: SnapshotReader, rel: str, node: Node, dest: str, meta: MetaApplier,
                progress: Callable[[int], None] | None, names: _TempNames) -> None:
    # A fresh short name, created exclusively: it fits beside a 255-byte name, and no entry
    # of the snapshot (a symlink or file named like it) is ever followed or clobbered.
    fd, tmp = _create_temp(dest.rpartition("/")[0], names)  # dest is absolute
    try:
        try:
            if node.holes:
                write_sparse(fd, reader.chunks(node, rel), node.holes, node.size, progress)
            else:
                for chunk in reader.chunks(node, rel):
                    _write_all(fd, chunk)
                    if progress:
                        progress(len(chunk))
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except OSError as exc:
        _unlink_quietly(tmp)
        if exc.filename is None:  # a failed write (disk full, file too large) names no file
            raise OSError(exc.errno, exc.strerror, dest) from None
        raise
    except BaseException:
        _unlink_quietly(tmp)
        raise
    meta.apply(dest, node)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # short writes happen (signals, some file systems): finish
        view = memoryview(data)
        while written < len(data):
            written += os.write(fd, view[written:])


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
