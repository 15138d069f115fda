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
from contextlib import suppress
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError

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


ASIDE_MARK = ".strongroom-old-"
STAGING_MARK = ".strongroom-staging-"


def make_staging(root: Path, when: str) -> Path:
    """A new private (0700) staging directory under ``root``, on the file system of the
    entries it will replace."""
    staging = root / f"{STAGING_MARK}{when}"
    try:
        staging.mkdir(mode=0o700)
        os.chmod(staging, 0o700)  # whatever the umask
    except OSError as exc:
        raise ConfigError(f"cannot create the staging directory {staging}: "
                          f"{exc.strerror}") from None
    return staging


def check_devices(staging_parent: Path, root: Path, changed: list[dict[str, Any]]) -> None:
    """Before anything changes: every entry must be on the file system of
    ``staging_parent`` (where the staging directory goes), since each is put in place by
    rename; ConfigError names the first that is not (a mount point, another file system)."""
    device = os.stat(staging_parent).st_dev
    for item in changed:
        place = root / item["path"].lstrip("/")
        while not os.path.lexists(place) and place != place.parent:
            place = place.parent
        if os.lstat(place).st_dev != device:
            raise ConfigError(f"{place} is on another file system than {staging_parent}: "
                              "recover that part with its own root (or include)")


def apply_staged(staging: Path, root: Path, changed: list[dict[str, Any]],
                 when: str) -> dict[str, Any]:
    """Put each changed entry of the verified ``staging`` copy in its place under ``root``,
    parents first. A file, symlink or replaced directory: the live entry is moved aside
    (``.<name>.strongroom-old-<when>`` beside it), the staged one renamed in (rename keeps
    the owner, mode and xattrs the restore gave it), and the old one removed; when the
    rename in fails, the old entry goes back, so every place holds the old or the new entry,
    never neither. A directory that stays a directory keeps its contents and takes the staged
    one's owner, mode and extended attributes (the old ones put back on failure).

    Stops at the first entry that cannot be applied. Returns ``applied`` (paths, in order),
    ``created`` (those that did not exist before), ``failed`` (the path, or None),
    ``error`` (one line) and ``left`` (where an old entry is when it could not go back)."""
    applied: list[str] = []
    created: list[str] = []
    done: set[str] = set()
    for item in sorted(changed, key=lambda c: c["path"]):
        rel = item["path"].lstrip("/")
        src, dst = staging / rel, root / rel
        if not os.path.lexists(src):
            if any(rel.startswith(d + "/") for d in done):
                applied.append(item["path"])  # came in with its directory
            continue
        existed = os.path.lexists(dst)
        try:
            meta_only = _apply_one(src, dst, item["type"], when)
        except Exception as exc:  # noqa: BLE001 - reported: the caller says what was applied
            why = getattr(exc, "strerror", None) or (str(exc).strip().splitlines()
                                                     or [type(exc).__name__])[0]
            return {"applied": applied, "created": created, "failed": item["path"],
                    "error": f"{item['path']}: {why}", "left": getattr(exc, "left_at", None)}
        applied.append(item["path"])
        if not existed:
            created.append(item["path"])
        if item["type"] == "dir" and not meta_only:
            done.add(rel)
    return {"applied": applied, "created": created, "failed": None, "error": None,
            "left": None}


def _apply_one(src: Path, dst: Path, kind: str, when: str) -> bool:
    """Apply one entry; True when only a directory's metadata changed."""
    if kind == "dir" and dst.is_dir() and not dst.is_symlink():
        _dir_metadata(src, dst)
        return True
    dst.parent.mkdir(parents=True, exist_ok=True)
    aside = dst.with_name(f".{dst.name}{ASIDE_MARK}{when}")
    moved = False
    if os.path.lexists(dst):
        os.rename(dst, aside)  # fails: nothing changed here
        moved = True
    try:
        os.rename(src, dst)
    except OSError as exc:
        if moved:
            try:
                os.rename(aside, dst)
            except OSError:
                exc.left_at = str(aside)  # type: ignore[attr-defined]
        raise
    if moved:
        with suppress(OSError):  # the verified safety snapshot holds it: a leftover only
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside)
            else:
                aside.unlink()
    return False


def _dir_metadata(src: Path, dst: Path) -> None:
    """Give ``dst`` the owner, mode and extended attributes of ``src``; on failure put its
    own back."""
    old, old_x = dst.lstat(), _xattrs(dst)
    new, new_x = src.lstat(), _xattrs(src)
    try:
        _set_metadata(dst, new, old_x, new_x)
    except OSError:
        with suppress(OSError):
            _set_metadata(dst, old, _xattrs(dst), old_x)
        raise


def _set_metadata(path: Path, st: os.stat_result, have: dict[str, str],
                  want: dict[str, str]) -> None:
    if os.geteuid() == 0:
        os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, stat.S_IMODE(st.st_mode))  # after chown, which may clear set-id bits
    for name in set(have) - set(want):
        os.removexattr(path, name)
    for name, value in want.items():
        if have.get(name) != value:
            os.setxattr(path, name, base64.b64decode(value))
