"""What restoring a files snapshot over a live directory would change, entry by entry, and
applying a verified staging copy over it (system recovery: owners, modes, extended attributes).

Snapshot paths are relative to ``/`` (a files backup of ``/etc/app`` holds ``etc/app/...``);
``root`` is where that ``/`` is on this host (``/`` itself for an in-place recovery)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
from pathlib import Path
from typing import Any

TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
         stat.S_IFIFO: "fifo", stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _xattrs(path: Path) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        try:
            out[name] = base64.b64encode(os.getxattr(path, name, follow_symlinks=False)).decode()
        except OSError:
            continue
    return out


def entry_changes(node: Any, live: Path) -> list[str]:
    """How ``live`` differs from the snapshot's ``node`` (empty: identical)."""
    try:
        st = live.lstat()
    except FileNotFoundError:
        return ["missing: would be created"]
    kind = TYPES.get(stat.S_IFMT(st.st_mode), "other")
    if kind != node.type:
        return [f"type {kind} -> {node.type}"]
    changes = []
    if node.type == "file" and (st.st_size != node.size or
                                (node.sha256 and _sha256(live) != node.sha256)):
        changes.append(f"content ({st.st_size} -> {node.size} bytes)")
    if node.type == "symlink" and os.readlink(live) != node.target:
        changes.append(f"link target {os.readlink(live)!r} -> {node.target!r}")
    if node.type != "symlink" and stat.S_IMODE(st.st_mode) != node.mode & 0o7777:
        changes.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {node.mode & 0o7777:04o}")
    if node.uid is not None and (st.st_uid, st.st_gid) != (node.uid, node.gid):
        changes.append(f"owner {st.st_uid}:{st.st_gid} -> {node.uid}:{node.gid}"
                       + (f" ({node.user}:{node.group})" if node.user else ""))
    if node.type != "symlink" and _xattrs(live) != dict(node.xattrs or {}):
        changes.append("extended attributes")
    return changes


def diff(reader: Any, root: Path, include: list[str] | None = None) -> list[dict[str, Any]]:
    """Every snapshot entry under ``include`` (default: all) that restoring would change."""
    out = []
    starts = [p.strip("/") for p in include or []] or [""]
    for start in starts:
        for path, node in reader.walk(start):
            changes = entry_changes(node, root / path)
            if changes:
                out.append({"path": "/" + path, "type": node.type, "changes": changes})
    return out


def apply_staged(staging: Path, root: Path, changed: list[dict[str, Any]]) -> int:
    """Move each changed entry of the verified ``staging`` copy over ``root`` (rename keeps the
    owner, mode and xattrs the restore gave it); a directory keeps its contents and takes the
    staged directory's mode, owner and extended attributes. Returns entries applied."""
    applied = 0
    for item in sorted(changed, key=lambda c: c["path"]):
        rel = item["path"].lstrip("/")
        src, dst = staging / rel, root / rel
        if not os.path.lexists(src):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if item["type"] == "dir" and dst.is_dir() and not dst.is_symlink():
            st = src.lstat()
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            if os.geteuid() == 0:
                os.chown(dst, st.st_uid, st.st_gid)
            for name, value in _xattrs(src).items():
                os.setxattr(dst, name, base64.b64decode(value))
        elif item["type"] == "dir":
            if os.path.lexists(dst):
                dst.unlink()
            os.replace(src, dst)
        else:
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            os.replace(src, dst)
        applied += 1
    return applied
