"""Restore beside, then swap: a path target is written into a staging directory beside it (same
file system), checked there, and exchanged with the live one by rename; the previous contents
are kept beside it as ``<target>.before-restore-<time>`` until someone removes them.

Names beside a target ``/srv/app``:
  ``/srv/.app.strongroom-staging-<time>``  a restore under way (or killed: the next one removes it)
  ``/srv/app.before-restore-<time>``      what the target held before a restore (the undo)
  ``/srv/app.undone-<time>``              what a restore had put there, moved away by an undo
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

from strongroom.errors import ConfigError, TargetNotEmpty

STAGING_MARK = ".strongroom-staging-"
KEPT_MARK = ".before-restore-"
UNDONE_MARK = ".undone-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def stamp() -> str:
    """A UTC time for names beside a target, sortable and unique to the second."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"


def real_target(target: str | Path) -> Path:
    """The directory a restore into ``target`` replaces: absolute, a symlink followed to the
    directory it names (the link stays, its directory is what gets swapped). TargetNotEmpty
    for a symlink to nothing or a target that is not a directory."""
    path = Path(os.path.abspath(Path(target).expanduser()))
    if path.is_symlink():
        if not path.exists():
            raise TargetNotEmpty(f"restore target {path} is a symlink to nothing")
        path = path.resolve()
    if path.exists() and not path.is_dir():
        raise TargetNotEmpty(f"restore target {path} exists and is not a directory")
    return path


def holds_data(path: Path) -> bool:
    """True when ``path`` is a directory with anything in it."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False


def staging_dir(target: Path, when: str) -> Path:
    """Create the private staging directory beside ``target`` (its parent made when missing),
    after removing what killed restores into the same target left. ConfigError when the
    parent is on another file system (a mount point cannot be swapped by rename)."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {parent} for restore target {target}: "
                          f"{exc.strerror}") from None
    if target.exists() and os.stat(target).st_dev != os.stat(parent).st_dev:
        raise ConfigError(f"restore target {target} is a mount point: restore into a "
                          "directory inside it, or elsewhere and move the data in")
    remove_leftovers(target)
    staging = parent / f".{target.name}{STAGING_MARK}{when}"
    try:
        staging.mkdir(mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create a staging directory beside {target}: "
                          f"{exc.strerror}") from None
    return staging


def remove_leftovers(target: Path) -> list[Path]:
    """Remove staging directories of earlier restores into ``target`` (killed or failed: a
    staging directory is never live data). Returns what was removed."""
    gone = []
    prefix = f".{target.name}{STAGING_MARK}"
    with os.scandir(target.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
                gone.append(Path(entry.path))
    return gone


def swap_in(staging: Path, target: Path, when: str) -> Path | None:
    """Put ``staging`` in ``target``'s place. What the target held is kept beside it (the
    path returned); an empty or missing target is simply replaced (None). Where the kernel
    can, the exchange is one atomic rename: the target never stops existing."""
    if not target.exists() and not target.is_symlink():
        os.rename(staging, target)
        return None
    if not holds_data(target):
        _copy_mode(target, staging)
        os.rmdir(target)
        os.rename(staging, target)
        return None
    kept = target.with_name(f"{target.name}{KEPT_MARK}{when}")
    if kept.exists() or kept.is_symlink():
        raise TargetNotEmpty(f"{kept} already exists: remove or rename it first")
    if _exchange(staging, target):
        os.rename(staging, kept)  # staging now holds the previous contents
        return kept
    os.rename(target, kept)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(kept, target)
        raise
    return kept


def put_back(target: Path, kept: Path, when: str) -> Path | None:
    """Undo a swap: move what is at ``target`` aside (``<target>.undone-<time>``, returned)
    and ``kept`` back into its place. ConfigError when ``kept`` is gone."""
    if not kept.is_dir() or kept.is_symlink():
        raise ConfigError(f"{kept} is not there: nothing to put back into {target}")
    moved = None
    if target.exists() or target.is_symlink():
        moved = target.with_name(f"{target.name}{UNDONE_MARK}{when}")
        if _exchange(kept, target):
            os.rename(kept, moved)
            return moved
        os.rename(target, moved)
    os.rename(kept, target)
    return moved


def _copy_mode(source: Path, dest: Path) -> None:
    """Give ``dest`` the owner and mode of ``source`` (a directory being replaced)."""
    st = os.stat(source)
    if os.geteuid() == 0:
        os.chown(dest, st.st_uid, st.st_gid)
    os.chmod(dest, stat.S_IMODE(st.st_mode))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))
