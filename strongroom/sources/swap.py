"""Restore beside, then swap: a path target is written into a staging directory beside it (same
file system), checked there, and put in place by rename; the previous contents are kept beside
it as ``<target>.before-restore-<time>`` until someone removes them. The old contents are
renamed to their kept name before the new ones take the target's name, so a kill at any moment
leaves the old contents under the target's name or the kept name, never under a staging name
(which the next restore removes). One restore into a target at a time (:func:`target_lock`).

Names beside a target ``/srv/app``:
  ``/srv/.app.strongroom-staging-<time>``  a restore under way (or killed: the next one removes it)
  ``/srv/app.before-restore-<time>``      what the target held before a restore (the undo)
  ``/srv/app.undone-<time>``              what a restore had put there, moved away by an undo
Where nothing can be made beside the target (a mount point, a parent this user cannot
write), the same names are made inside it, starting with a dot (``/srv/app/.strongroom-
staging-<time>``, ``/srv/app/.before-restore-<time>``) and entries move one by one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from strongroom.errors import ConfigError, LockedError, TargetNotEmpty

STAGING_MARK = ".strongroom-staging-"
KEPT_MARK = ".before-restore-"
UNDONE_MARK = ".undone-"
LOCK_MARK = ".strongroom-lock"


def stamp() -> str:
    """A UTC time for names beside a target, sortable, to the microsecond."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"


@contextmanager
def target_lock(target: Path) -> Iterator[None]:
    """Hold the lock of restores into ``target`` (a lock file beside it, or inside it when
    nothing can be made beside it); LockedError when another restore holds it."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f".{target.name}{LOCK_MARK}"
    if not os.access(parent, os.W_OK | os.X_OK) and target.is_dir():
        path = target / LOCK_MARK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"another restore into {target} is under way") from None
        try:  # the file may have been removed by the holder we waited for: lock a live one
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            with suppress(FileNotFoundError):
                os.unlink(path)  # while still held: nobody else holds this file
        finally:
            os.close(fd)


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
    """Create the private staging directory beside ``target`` (its parent made when
    missing), or inside it when nothing can be made beside it; earlier staging directories
    of the same target (killed or failed restores) are removed first."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {parent} for restore target {target}: "
                          f"{exc.strerror}") from None
    remove_leftovers(target)
    inside = target.is_dir() and (os.stat(target).st_dev != os.stat(parent).st_dev
                                  or not os.access(parent, os.W_OK | os.X_OK))
    staging = (target / f"{STAGING_MARK}{when}" if inside
               else parent / f".{target.name}{STAGING_MARK}{when}")
    try:
        staging.mkdir(mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create a staging directory for {target}: "
                          f"{exc.strerror}") from None
    return staging


def kept_path(target: Path, staging: Path, when: str) -> Path:
    """Where a swap through ``staging`` keeps what ``target`` held."""
    if staging.parent == target:
        return target / f"{KEPT_MARK}{when}"
    return target.with_name(f"{target.name}{KEPT_MARK}{when}")


def remove_leftovers(target: Path) -> list[Path]:
    """Remove staging directories of earlier restores into ``target`` (killed or failed: a
    staging directory is never live data). Returns what was removed."""
    gone = []
    for where, prefix in ((target.parent, f".{target.name}{STAGING_MARK}"),
                          (target, STAGING_MARK)):
        try:
            entries = list(os.scandir(where))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
                gone.append(Path(entry.path))
    return gone


def swap_in(staging: Path, target: Path, when: str) -> Path | None:
    """Put the directory ``staging`` in ``target``'s place. What the target held is kept
    (the path returned, see :func:`kept_path`); an empty or missing target is simply
    replaced (None)."""
    if staging.parent == target:
        return _swap_inside(staging, target, when)
    if target.is_dir() and not target.is_symlink() and not holds_data(target):
        os.rmdir(target)
    return swap_entry(staging, target, when)


def _swap_inside(staging: Path, target: Path, when: str) -> Path | None:
    """The swap of a staging directory made inside ``target``: entry by entry, each move a
    rename, so a stop half-way leaves every entry in the target, the staging or the kept
    directory, never lost."""
    kept = kept_path(target, staging, when)
    had = _move_entries(target, kept)
    for name in os.listdir(staging):  # every restored entry, whatever its name
        os.rename(staging / name, target / name)
    shutil.copystat(staging, target)
    os.rmdir(staging)
    return kept if had else None


def _move_entries(source: Path, into: Path) -> bool:
    """Rename every entry of ``source`` but the restore's own names (staging, kept, undone,
    lock) into ``into`` (made private when missing); False when there was none."""
    names = [e for e in os.listdir(source) if not _is_mark(e)]
    if names:
        into.mkdir(mode=0o700, exist_ok=True)
    for name in names:
        os.rename(source / name, into / name)
    return bool(names)


def _is_mark(name: str) -> bool:
    return name == LOCK_MARK or name.startswith((STAGING_MARK, KEPT_MARK, UNDONE_MARK))


def swap_entry(new: Path, target: Path, when: str) -> Path | None:
    """Put ``new`` (a file or directory) in ``target``'s place, keeping what was there as
    ``<target>.before-restore-<time>`` (returned; None when nothing was)."""
    if not target.exists() and not target.is_symlink():
        os.rename(new, target)
        return None
    kept = target.with_name(f"{target.name}{KEPT_MARK}{when}")
    if kept.exists() or kept.is_symlink():
        raise TargetNotEmpty(f"{kept} already exists: remove or rename it first")
    os.rename(target, kept)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(kept, target)
        raise
    return kept


def put_back(target: Path, kept: Path, when: str) -> Path | None:
    """Undo a swap: move what is at ``target`` aside (``<target>.undone-<time>``, returned)
    and ``kept`` back into its place. Run again after a kill, it finishes the job (the
    target missing: the kept contents simply move in). ConfigError when ``kept`` is gone."""
    if not (kept.exists() or kept.is_symlink()):
        raise ConfigError(f"{kept} is not there: nothing to put back into {target}")
    if kept.parent == target:  # kept inside the target: entry by entry
        moved = target / f"{UNDONE_MARK}{when}"
        had = _move_entries(target, moved)
        for name in os.listdir(kept):
            os.rename(kept / name, target / name)
        os.rmdir(kept)
        return moved if had else None
    moved = None
    if target.exists() or target.is_symlink():
        moved = target.with_name(f"{target.name}{UNDONE_MARK}{when}")
        os.rename(target, moved)
    os.rename(kept, target)
    return moved


def put_back_entries(target: Path, kept: Path, roots: list[str], when: str) -> Path | None:
    """Undo a restore of some paths (``roots``, relative to ``target``): each one now there
    moves to ``<target>.undone-<time>/<root>``, and what ``kept`` holds of it moves back.
    Never through a symlink inside the target."""
    moved = target.with_name(f"{target.name}{UNDONE_MARK}{when}")
    any_moved = False
    for rel in roots:
        refuse_links(target, rel)
        now, old = target / rel, kept / rel
        if now.exists() or now.is_symlink():
            (moved / rel).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.rename(now, moved / rel)
            any_moved = True
        if old.exists() or old.is_symlink():
            os.rename(old, now)
    shutil.rmtree(kept)  # only directories that led to the entries are left
    return moved if any_moved else None


def refuse_links(root: Path, rel: str) -> None:
    """TargetNotEmpty when a directory leading from ``root`` to ``root/rel`` is a symlink (or
    not a directory): nothing is ever moved through one."""
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        step = root.joinpath(*parts[:i])
        if step.is_symlink() or (step.exists() and not step.is_dir()):
            raise TargetNotEmpty(f"{step} is a symlink or a file in the target where the "
                                 "snapshot has a directory: never followed; move it away")


def kept_target(kept: Path) -> Path:
    """The target whose previous contents ``kept`` holds (see :func:`kept_path`)."""
    if kept.name.startswith(KEPT_MARK):
        return kept.parent
    name, mark, _ = kept.name.rpartition(KEPT_MARK)
    if not mark:
        raise ConfigError(f"{kept} is not a directory a restore kept")
    return kept.with_name(name)
