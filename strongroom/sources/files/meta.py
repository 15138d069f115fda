"""File metadata: a snapshot node from ``lstat``, and owner, mode and times put back."""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from pathlib import Path

from strongroom.repository import Node


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


def stat_node(st: os.stat_result, kind: str) -> Node:
    """A node of type ``kind`` ("file", "dir", "symlink") carrying ``st``'s metadata."""
    return Node(name="", type=kind, mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns,
                ctime_ns=st.st_ctime_ns, uid=st.st_uid, gid=st.st_gid, user=_user(st.st_uid),
                group=_group(st.st_gid),
                inode=st.st_ino, dev=st.st_dev, nlink=st.st_nlink,
                size=st.st_size if kind == "file" else 0)


def apply_meta(path: Path, node: Node, as_root: bool) -> None:
    """Owner (as root only), mode (not for symlinks) and mtime of ``node`` onto ``path``."""
    if as_root and node.uid is not None:
        os.lchown(path, node.uid, node.gid if node.gid is not None else -1)
    if node.type != "symlink":
        os.chmod(path, node.mode)
    os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
