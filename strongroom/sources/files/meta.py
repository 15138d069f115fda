"""File metadata: a snapshot node from ``lstat`` and ``listxattr``, and all of it put back.

Put back in this order: owner (chown clears setuid/setgid and file capabilities), extended
attributes (ACLs, capabilities), mode, then times. Whatever a restore cannot apply (not root,
a file system without extended attributes) is counted in a :class:`Shortfall`, not raised.
A restore puts metadata back through an open file or directory (:meth:`MetaApplier.apply_fd`)
or by name relative to its directory's descriptor (:meth:`MetaApplier.apply_at`): never through
a symlink. With ``drop_setuid`` (a restore outside the original location) files lose their
setuid/setgid bits, counted as ``setuid``.
"""

from __future__ import annotations

import base64
import errno
import functools
import grp
import os
import pwd
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from strongroom.repository import Node

_NO_XATTRS = {errno.ENOTSUP, errno.EOPNOTSUPP}
_SETID = stat.S_ISUID | stat.S_ISGID
_PROC_FD = "/proc/self/fd"
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}


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


@functools.lru_cache(maxsize=1024)
def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


@functools.lru_cache(maxsize=1024)
def _gid_of(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def special_kind(st_mode: int) -> str | None:
    """"fifo", "chardev" or "blockdev" for those file types, else None (sockets too)."""
    return _SPECIAL.get(stat.S_IFMT(st_mode))


def stat_node(st: os.stat_result, kind: str) -> Node:
    """A node of type ``kind`` carrying ``st``'s metadata (owner as number and name, mode
    with setuid/setgid/sticky, nanosecond mtime, device numbers). Access times are not
    kept: reading a file moves them, which would make every run store new trees."""
    node = Node(name="", type=kind, mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns,
                ctime_ns=st.st_ctime_ns, uid=st.st_uid, gid=st.st_gid,
                user=_user(st.st_uid), group=_group(st.st_gid),
                inode=st.st_ino, dev=st.st_dev, nlink=st.st_nlink,
                size=st.st_size if kind == "file" else 0)
    if kind in ("chardev", "blockdev"):
        node.rdev_major, node.rdev_minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return node


def read_xattrs(where: str | int, follow_symlinks: bool = False) -> dict[str, str]:
    """Every extended attribute of a path (never following a symlink) or open fd, values in
    base64; {} when there are none or the file system has none. ACLs are the
    ``system.posix_acl_*`` attributes. One ``listxattr`` when there are none."""
    try:
        if isinstance(where, int):
            names = os.listxattr(where)
        else:
            names = os.listxattr(where, follow_symlinks=follow_symlinks)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return {}
        raise
    out = {}
    for name in names:
        try:
            if isinstance(where, int):
                value = os.getxattr(where, name)
            else:
                value = os.getxattr(where, name, follow_symlinks=follow_symlinks)
        except OSError as exc:
            if exc.errno == errno.ENODATA:  # removed since it was listed
                continue
            raise
        out[name] = base64.b64encode(value).decode("ascii")
    return out


def _xattr_kind(name: str) -> str:
    if name.startswith("system.posix_acl_"):
        return "acls"
    if name == "security.capability":
        return "capabilities"
    return "xattrs"


class Shortfall:
    """What a restore could not apply, counted by kind (thread-safe), with a first example."""

    KINDS = {"owner": "owners", "mode": "setuid/setgid bits",
             "setuid": "setuid/setgid bits (outside the original location: --keep-setuid "
                       "keeps them)", "acls": "ACLs",
             "capabilities": "file capabilities", "xattrs": "extended attributes",
             "devices": "devices"}

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: str = ""
        self.unsupported = False
        self._lock = threading.Lock()

    def add(self, kind: str, path: str | Path, why: str) -> None:
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if not self.first:
                self.first = f"{path}: {why}"

    def summary(self) -> str:
        """One line naming what was not restored, or '' when everything was."""
        if not self.counts:
            return ""
        parts = ", ".join(f"{self.KINDS.get(k, k)} of {n} entr{'y' if n == 1 else 'ies'}"
                          for k, n in sorted(self.counts.items()))
        who = "" if os.geteuid() == 0 else f" (running as uid {os.geteuid()}, not root)"
        fs = "; the target file system does not support extended attributes" \
            if self.unsupported else ""
        return f"not restored{who}: {parts}{fs}; first: {self.first}"


class MetaApplier:
    """Puts a node's metadata back onto a restored entry.

    Owner: by default a user or group *name* that exists on this host wins over the recorded
    number (like tar and restic); with ``numeric_owner`` only the numbers are used. With
    ``drop_setuid`` a file's setuid/setgid bits are not restored (counted)."""

    def __init__(self, numeric_owner: bool = False, shortfall: Shortfall | None = None, *,
                 drop_setuid: bool = False) -> None:
        self.numeric_owner = numeric_owner
        self.shortfall = shortfall or Shortfall()
        self.drop_setuid = drop_setuid
        self.euid = os.geteuid()
        self.as_root = self.euid == 0
        self.egid = os.getegid()
        self.groups = set(os.getgroups()) | {self.egid}

    def owner(self, node: Node) -> tuple[int, int]:
        """The (uid, gid) to give ``node``'s restored entry, -1 where nothing is known."""
        uid, gid = node.uid, node.gid
        # Trees written before uid/gid 0 were kept (to_dict dropped falsy values) have the name
        # but no number exactly when the number was 0.
        if uid is None and node.user:
            uid = 0
        if gid is None and node.group:
            gid = 0
        if not self.numeric_owner:
            by_name = _uid_of(node.user) if node.user else None
            uid = by_name if by_name is not None else uid
            by_name = _gid_of(node.group) if node.group else None
            gid = by_name if by_name is not None else gid
        return (-1 if uid is None else uid), (-1 if gid is None else gid)

    def mode(self, node: Node, shown: str | Path) -> int:
        """The mode to give ``node``'s entry: without setuid/setgid (counted) for a file when
        ``drop_setuid``."""
        if self.drop_setuid and node.type == "file" and node.mode & _SETID:
            self.shortfall.add("setuid", shown, f"mode {oct(node.mode)}: setuid/setgid not "
                               "restored outside the original location")
            return node.mode & ~_SETID
        return node.mode

    def apply(self, path: str | Path, node: Node) -> None:
        """Owner, extended attributes, mode (not for symlinks) and times, in that order, by
        path (only the last component is never followed)."""
        if node.type == "symlink":
            self._put(node, path, lambda u, g: os.lchown(path, u, g),
                      lambda n, v: os.setxattr(path, n, v, follow_symlinks=False), None,
                      lambda: os.lstat(path))
        else:
            self._put(node, path, lambda u, g: os.lchown(path, u, g),
                      lambda n, v: os.setxattr(path, n, v, follow_symlinks=False),
                      lambda m: os.chmod(path, m), lambda: os.lstat(path))
        os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)

    def apply_fd(self, fd: int, node: Node, shown: str | Path) -> None:
        """All of it onto an open file or directory (``shown`` names it in the shortfall)."""
        self._put(node, shown, lambda u, g: os.chown(fd, u, g),
                  lambda n, v: os.setxattr(fd, n, v), lambda m: os.chmod(fd, m),
                  lambda: os.fstat(fd))
        os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))

    def apply_at(self, dir_fd: int, name: str, node: Node, shown: str | Path) -> None:
        """All of it onto the symlink, fifo or device ``name`` in the directory ``dir_fd``,
        never following a symlink (a symlink's own mode is never changed: Linux has none)."""
        # lsetxattr has no dir_fd: the directory's descriptor through /proc stands in for it
        where = f"{_PROC_FD}/{dir_fd}/{name}" if _has_proc() else str(shown)
        ref = -1
        if node.type != "symlink":  # chmod through an O_PATH descriptor of the entry itself
            ref = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
        try:
            chmod = None
            if ref >= 0 and not stat.S_ISLNK(os.fstat(ref).st_mode):
                chmod = (lambda m: os.chmod(f"{_PROC_FD}/{ref}", m)) if _has_proc() else (
                    lambda m: os.chmod(name, m, dir_fd=dir_fd))
            self._put(node, shown,
                      lambda u, g: os.chown(name, u, g, dir_fd=dir_fd, follow_symlinks=False),
                      lambda n, v: os.setxattr(where, n, v, follow_symlinks=False), chmod,
                      lambda: os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
        finally:
            if ref >= 0:
                os.close(ref)
        os.utime(name, ns=(node.mtime_ns, node.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def _put(self, node: Node, shown: str | Path, chown: Callable[[int, int], None],
             setxattr: Callable[[str, bytes], None], chmod: Callable[[int], None] | None,
             lstat: Callable[[], os.stat_result]) -> None:
        """Owner, extended attributes and mode (when ``chmod``), through the given calls."""
        self._chown(node, shown, chown)
        for name, value in node.xattrs.items():
            try:
                setxattr(name, base64.b64decode(value))
            except OSError as exc:
                if exc.errno in _NO_XATTRS:
                    self.shortfall.unsupported = True
                self.shortfall.add(_xattr_kind(name), shown, f"{name}: {exc.strerror}")
        if chmod is None:
            return
        mode = self.mode(node, shown)
        chmod(mode)
        if not self.as_root and mode & _SETID:
            # the kernel silently drops setgid for a group we are not in
            if stat.S_IMODE(lstat().st_mode) != mode:
                self.shortfall.add("mode", shown, f"mode {oct(mode)} not kept")

    def _chown(self, node: Node, shown: str | Path, chown: Callable[[int, int], None]) -> None:
        uid, gid = self.owner(node)
        if uid == -1 and gid == -1:
            return
        if self.as_root:
            chown(uid, gid)
            return
        # not root: only our own uid, and only groups we are in
        short = (uid not in (-1, self.euid)) or (gid not in (-1, *self.groups))
        if short:
            self.shortfall.add("owner", shown, f"owner {node.user or uid}:{node.group or gid}")
        if gid not in (-1, self.egid) and gid in self.groups:
            chown(-1, gid)


@functools.lru_cache(maxsize=1)
def _has_proc() -> bool:
    """Whether /proc/self/fd is there (a chroot or container may lack /proc)."""
    return os.path.isdir(_PROC_FD)
