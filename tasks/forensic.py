"""Copies of a target as found, before a recovery overwrites it (a security incident's forensic
copy of a possibly tampered state): complete and read back, or refused, before anything is
touched. The tag says why it was taken; such snapshots are never recovery points
(``tasks.recovery.NOT_RECOVERY_POINTS``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, SourceError
from strongroom.sources import registry
from tasks.verify import verify_snapshot


def copy_target(repo: Any, src: Any, dest: str, tag: str = "forensic") -> Any:
    """Snapshot what ``dest`` holds now as ``<name>-<tag>``, tagged ``tag``; read it back.

    A directory (a path kind's target, or another kind's data directory) is backed up with
    the files kind when it exists and holds anything; a service (URL, DSN) with the source's
    own kind pointed at it. Returns None when there is nothing to keep. Raises, so that the
    caller stops before changing anything, when the target cannot be read in full (ConfigError:
    this kind cannot read it; SourceError: entries it could not read)."""
    impl = src.source()
    name = f"{src.source_name}-{tag}"
    path = Path(dest)
    if impl.target_is_path and str(path) == "/":  # in place: each backed-up path
        return _copy_paths(repo, name, tag, [Path(p) for p in src.settings()["paths"]])
    if impl.target_is_path or ("://" not in dest and path.is_absolute()):
        if path.is_symlink() and path.is_dir():
            path = path.resolve()  # the directory a restore replaces, not the link
        if not os.path.lexists(path):
            return None
        if path.is_dir() and not any(path.iterdir()):
            return None
        snap = registry.get("files").backup(repo, name=name, kind="full", tags=[tag],
                                            settings={"paths": [str(path)]})
        errors = snap.meta.get("error_count") or len(snap.meta.get("errors") or [])
        if errors:
            raise SourceError(f"{tag} copy of {path} could not read {errors} entries "
                              f"(first: {snap.meta['errors'][0]})")
    else:
        settings = impl.settings_for_target(src.settings(), dest)
        if settings is None:
            raise ConfigError(f"cannot take a {tag} copy of {dest}: a {src.source_kind} source "
                              "cannot read that target")
        snap = impl.backup(repo, name=name, kind="snapshot", tags=[tag], settings=settings)
    verify_snapshot(repo, snap.id, "read-data")
    return snap


def _copy_paths(repo: Any, name: str, tag: str, paths: list[Path]) -> Any:
    """The files kind's copy of every one of ``paths`` that exists; None when none does."""
    there = [str(p.resolve() if p.is_symlink() and p.is_dir() else p) for p in paths
             if os.path.lexists(p)]
    if not there:
        return None
    snap = registry.get("files").backup(repo, name=name, kind="full", tags=[tag],
                                        settings={"paths": there})
    errors = snap.meta.get("error_count") or len(snap.meta.get("errors") or [])
    if errors:
        raise SourceError(f"{tag} copy of {', '.join(there)} could not read {errors} entries "
                          f"(first: {snap.meta['errors'][0]})")
    verify_snapshot(repo, snap.id, "read-data")
    return snap
