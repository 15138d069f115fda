"""Restore a files snapshot under a directory; every file is verified before it appears.

A file is written to a fresh temporary name beside its place and renamed over it only when
all its blobs were read and checked; directories get their metadata last (after their
children are written). Fifos and devices are made with mknod, sparse files get their holes
back. What a non-root restore cannot apply (owners, devices, some attributes) is counted in the
report (``not_restored_owner``, ``_devices``, ``_xattrs``, ``_acls``, ``_capabilities``,
``_mode``) and summed up in one warning, not a failure.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
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
    dirs: list[tuple[Path, Node]] = []
    links: dict[tuple[int, int], Path] = {}
    files = 0
    total = 0
    try:
        with reader.pool(WORKERS, "restore") as pool:  # Ctrl-C: stop at the next chunk
            futures = []
            for rel, node in reader.walk():
                if not included(rel, includes):
                    continue
                dest = target / rel
                if not fresh:  # an empty target holds nothing to make room from
                    _make_room(dest, node)
                if node.type == "dir":
                    dest.mkdir(exist_ok=True)
                    dirs.append((dest, node))
                elif node.type == "symlink":
                    os.symlink(node.target, dest)
                    meta.apply(dest, node)
                elif node.nlink > 1 and (node.dev, node.inode) in links:
                    futures.append((links[(node.dev, node.inode)], dest, None))
                elif node.type in _DEVICE_TYPES:
                    if _make_special(dest, node, meta):
                        if node.nlink > 1:
                            links[(node.dev, node.inode)] = dest
                        meta.apply(dest, node)
                else:
                    if node.nlink > 1:
                        links[(node.dev, node.inode)] = dest
                    futures.append((dest, None, pool.submit(_write_file, reader, rel, node,
                                                            dest, meta, progress)))
                    files += 1
                    total += node.size
            for _first, _dest, fut in futures:
                if fut is not None:
                    fut.result()
            for first, dest, fut in futures:
                if fut is None:
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


def _make_room(dest: Path, node: Node) -> None:
    """Remove what a previous (partial) restore left where ``node`` goes, but never a
    directory's contents, and never follow a symlink out of the target."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        dest.unlink()
    elif dest.is_dir() and node.type != "dir":
        raise TargetNotEmpty(f"{dest} is a directory in the target but a {node.type} in the "
                             "snapshot; move it away first")


def _write_file(reader: SnapshotReader, rel: str, node: Node, dest: Path, meta: MetaApplier,
                progress: Callable[[int], None] | None) -> None:
    # A fresh short name, created exclusively: it fits beside a 255-byte name, and no entry
    # of the snapshot (a symlink or file named like it) is ever followed or clobbered.
    fd, name = tempfile.mkstemp(prefix=".", suffix=".strongroom-partial", dir=dest.parent)
    tmp = Path(name)
    try:
        if node.holes:
            try:
                write_sparse(fd, reader.chunks(node, rel), node.holes, node.size, progress)
            finally:
                os.close(fd)
        else:
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
    meta.apply(dest, node)
