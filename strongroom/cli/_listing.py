"""How ``ls`` shows a snapshot's entries: short (type, mode, size, path) or long, like ``ls -l``
(``-rw-r-----``, owner, group, size, mtime, path, ``-> target`` for a symlink)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from typing import Any

from strongroom.repository.model import Node

_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK,
              "fifo": stat.S_IFIFO, "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK}


def mode_string(node: Node) -> str:
    """``-rw-r-----``, ``drwxr-xr-x``, ``lrwxrwxrwx``... (setuid, setgid and sticky shown)."""
    return stat.filemode(_TYPE_BITS.get(node.type, 0) | stat.S_IMODE(node.mode))


def owner(node: Node) -> str:
    """The user name recorded at backup, else the uid (``?`` when neither was kept)."""
    return node.user or (str(node.uid) if node.uid is not None else "?")


def group(node: Node) -> str:
    """The group name recorded at backup, else the gid (``?`` when neither was kept)."""
    return node.group or (str(node.gid) if node.gid is not None else "?")


def mtime_text(node: Node) -> str:
    """The modification time in UTC, to the second."""
    when = datetime.fromtimestamp(node.mtime_ns / 1e9, UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def short_row(path: str, node: Node) -> dict[str, Any]:
    """The ``ls --json`` row (unchanged since the first release)."""
    return {"path": path, "type": node.type, "size": node.size, "mode": oct(node.mode)}


def long_row(path: str, node: Node) -> dict[str, Any]:
    """The ``ls -l --json`` row: the short row plus owner, group, mtime and symlink target."""
    row = short_row(path, node)
    row.update({"permissions": mode_string(node), "user": node.user, "group": node.group,
                "uid": node.uid, "gid": node.gid,
                "mtime": datetime.fromtimestamp(node.mtime_ns / 1e9, UTC).isoformat(),
                "mtime_ns": node.mtime_ns})
    if node.type == "symlink":
        row["target"] = node.target
    return row


def short_line(path: str, node: Node) -> str:
    return f"{node.type:8} {oct(node.mode):>7} {node.size:>12} {path}"


def long_lines(entries: list[tuple[str, Node]]) -> list[str]:
    """``ls -l`` lines, owner and group columns as wide as their longest value."""
    owners = [owner(n) for _, n in entries]
    groups = [group(n) for _, n in entries]
    uw = max((len(o) for o in owners), default=0)
    gw = max((len(g) for g in groups), default=0)
    sizes = [str(n.size) for _, n in entries]
    sw = max((len(s) for s in sizes), default=0)
    lines = []
    for (path, node), own, grp, size in zip(entries, owners, groups, sizes, strict=True):
        link = f" -> {node.target}" if node.type == "symlink" else ""
        lines.append(f"{mode_string(node)} {own:<{uw}} {grp:<{gw}} {size:>{sw}} "
                     f"{mtime_text(node)} {path}{link}")
    return lines
