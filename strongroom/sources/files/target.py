"""A files restore target before a recovery writes into it: checked, snapshotted, emptied."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from strongroom.errors import ConfigError, TargetNotEmpty
from strongroom.repository import Repository, Snapshot
from strongroom.sources.files.backup import backup_files


def empty_directory(path: Path) -> None:
    """Remove everything inside ``path`` (never following a symlink out of it)."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def prepare_target(repo: Repository, name: str, target: str | Path,
                   replace: bool) -> Snapshot | None:
    """Make ``target`` ready for a recovery of source ``name``: a non-empty directory is refused
    unless ``replace``, else backed up in full as ``<name>-safety`` and then emptied, so the
    restore leaves exactly the snapshot; a missing one is created. Returns the safety snapshot,
    or None when there was nothing to keep."""
    path = Path(target).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise TargetNotEmpty(f"restore target {path} exists and is not a directory")
    safety = None
    if path.is_dir() and any(path.iterdir()):
        if not replace:
            raise TargetNotEmpty(f"restore target {path} is not empty (set replace to "
                                 "overwrite it after a safety snapshot)")
        if not os.access(path, os.W_OK):
            raise ConfigError(f"restore target {path} is not writable")
        safety = backup_files(repo, [path], name=f"{name}-safety", kind="full",
                              tags=["safety", "pre-restore"]).snapshot
        empty_directory(path)
    else:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create restore target {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"restore target {path} is not writable")
    return safety
