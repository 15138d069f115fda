"""Compare a restored directory with its files snapshot, byte for byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from strongroom.errors import IntegrityError
from strongroom.repository import Repository, Snapshot
from strongroom.sources.files.meta import special_kind
from strongroom.sources.files.patterns import included


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _special_problem(path: Path, kind: str, major: int, minor: int,
                     devices_optional: bool) -> str:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if devices_optional and kind != "fifo":
            return ""
        return f"{kind} missing"
    if special_kind(st.st_mode) != kind:
        return f"not a {kind}"
    if kind != "fifo" and (os.major(st.st_rdev), os.minor(st.st_rdev)) != (major, minor):
        return f"device number {os.major(st.st_rdev)}:{os.minor(st.st_rdev)} differs"
    return ""


def compare_tree(repo: Repository, snap: Snapshot, root: Path, include: list[str],
                 devices_optional: bool = False, *, sub: str = "",
                 hash_files: bool = True, setuid_dropped: bool = False) -> dict[str, Any]:
    """Check every entry of ``snap`` (within ``include``; with ``sub``, the part under that
    snapshot path, restored as ``root`` itself) under ``root``: directories and symlinks
    exist (links pointing where they did), fifos and devices are what they were (devices may
    be missing when ``devices_optional``: a non-root restore cannot make them), files have
    the snapshot's size, and with ``hash_files`` its SHA-256 and mode (with
    ``setuid_dropped`` also the mode without setuid/setgid: the restore did not keep them).
    IntegrityError names the first difference and counts them all."""
    files = checked = 0
    problems: list[str] = []
    sub = sub.strip("/")
    skip = len(sub) + 1 if sub else 0
    for rel, node in repo.reader(snap).walk(sub):
        if not included(rel, include):
            continue
        path = root / rel[skip:] if skip else root / rel
        if node.type == "symlink":
            if not path.is_symlink() or os.readlink(path) != node.target:
                problems.append(f"{rel}: symlink missing or pointing elsewhere")
        elif node.type == "dir":
            if not path.is_dir() or path.is_symlink():
                problems.append(f"{rel}: directory missing")
        elif node.type != "file":
            problem = _special_problem(path, node.type, node.rdev_major, node.rdev_minor,
                                       devices_optional)
            if problem:
                problems.append(f"{rel}: {problem}")
        else:
            files += 1
            if path.is_symlink() or not path.is_file() or path.stat().st_size != node.size:
                problems.append(f"{rel}: missing or wrong size")
                continue
            if not hash_files:
                checked += 1
            elif _sha256(path) != node.sha256:
                problems.append(f"{rel}: contents differ from the snapshot")
            elif (mode := path.stat().st_mode & 0o7777) != node.mode & 0o7777 and not (
                    setuid_dropped and mode == node.mode & 0o1777):
                problems.append(f"{rel}: mode {oct(mode)} differs")
            else:
                checked += 1
    if problems:
        raise IntegrityError(f"restored tree under {root} differs from snapshot {snap.short_id}: "
                             f"{problems[0]} ({len(problems)} problem(s))")
    return {"checked": "byte for byte" if hash_files else "structure", "files": files,
            "files_identical": checked}
