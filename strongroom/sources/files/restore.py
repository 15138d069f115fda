"""Restore a files snapshot under a directory; every file is verified before it appears.

A file is written to a fresh temporary name beside its place and renamed over it only when
all its blobs were read and checked; directories get their metadata last.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, StorageError, StrongroomError, TargetNotEmpty
from strongroom.repository import Node, Repository, Snapshot
from strongroom.repository.reader import SnapshotReader
from strongroom.sources.files.meta import apply_meta
from strongroom.sources.files.patterns import included

WORKERS = 4


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
                if not included(rel, includes):
                    continue
                dest = target / rel
                _make_room(dest, node)
                if node.type == "dir":
                    dest.mkdir(exist_ok=True)
                    dirs.append((dest, node))
                elif node.type == "symlink":
                    os.symlink(node.target, dest)
                    apply_meta(dest, node, as_root)
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
        apply_meta(dest, node, as_root)
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
    apply_meta(dest, node, as_root)
