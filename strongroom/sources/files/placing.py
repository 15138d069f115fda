"""Where a files restore puts each part of a snapshot, and how a staged part takes its place.

Layouts of a restore into ``target``:
  ``paths``     the snapshot's absolute paths under ``target`` (``target/srv/app/...``)
  ``contents``  a one-path snapshot's contents into ``target`` itself (the path's directory
                becomes ``target``); a snapshot of several paths falls back on ``paths``
A ``target`` of ``/`` puts every path back where it was backed up from (in place), whatever
the layout. Each place is staged beside itself and swapped in (:mod:`strongroom.sources.swap`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from strongroom.errors import ConfigError, TargetNotEmpty, TargetTooSmall
from strongroom.repository import Node
from strongroom.sources import swap

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot
    from strongroom.repository.reader import SnapshotReader

Layout = Literal["paths", "contents"]
ROOM_MARGIN = 1.05  # a restore needs its bytes plus directories and slack


@dataclass
class Place:
    """One part of a snapshot (``sub``: its path in the snapshot, "" for all of it) and the
    path it replaces (``final``; a symlink to a directory followed). ``node`` is the part's
    own entry (None for the whole snapshot); ``roots`` the include paths under it (relative
    to it; empty: all of it)."""

    sub: str
    final: Path
    node: Node | None
    roots: list[str]

    @property
    def is_dir(self) -> bool:
        return self.node is None or self.node.type == "dir"


def places(reader: SnapshotReader, snap: Snapshot, target: str | Path, layout: Layout,
           includes: list[str]) -> list[Place]:
    """The places a restore of ``snap`` into ``target`` writes, within ``includes``."""
    target_text = str(target)
    if "://" in target_text:
        raise ConfigError(f"{target_text} is not a directory: a files restore writes into a "
                          "directory")
    path = Path(os.path.abspath(Path(target_text).expanduser()))
    roots = [p.strip("/") for p in snap.paths if p.strip("/")]
    if str(path) == "/":  # each path where it was; one inside another comes with it
        outer = _outermost(roots)
        parts = [(r, Path("/" + r)) for r in outer]
    elif layout == "contents" and len(roots) == 1:
        parts = [(roots[0], path)]
    else:
        parts = [("", path)]
    out = []
    for sub, final in parts:
        wanted = _roots_under(sub, includes)
        if wanted is None:
            continue
        node = reader.node(sub) if sub else None
        if node is None or node.type == "dir":
            final = swap.real_target(final)
        out.append(Place(sub, final, node, wanted))
    if not out:
        raise ConfigError("nothing of the snapshot is within the given include paths")
    return out


def _roots_under(sub: str, includes: list[str]) -> list[str] | None:
    """Include paths relative to ``sub``: [] for all of it, None for none of it."""
    cleaned = [i.strip("/") for i in includes]
    if not cleaned or any(not i for i in cleaned):
        return []
    if not sub:
        return _outermost(cleaned)
    inside = []
    for inc in cleaned:
        if inc == sub or sub.startswith(inc + "/"):
            return []
        if inc.startswith(sub + "/"):
            inside.append(inc[len(sub) + 1:])
    return _outermost(inside) if inside else None


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without those inside another one of them."""
    return sorted(p for p in set(paths)
                  if not any(p.startswith(q + "/") for q in paths if q != p))


def check_places(repo: Repository | None, finals: list[tuple[Path, bool]], replace: bool,
                 size: int) -> None:
    """Before anything is written: every place (path, is a directory) can be replaced
    (``replace`` when it holds data), none holds (or is held by) the repository being read,
    and each file system has room for the staged copy beside the live one."""
    repo_root = getattr(repo.backend, "root", None) if repo is not None else None
    need: dict[int, tuple[int, Path]] = {}
    for final, is_dir in finals:
        if is_dir and final.exists() and not final.is_dir():
            raise TargetNotEmpty(f"restore target {final} exists and is not a directory")
        if not replace and (swap.holds_data(final) or (not is_dir and (
                final.exists() or final.is_symlink()))):
            raise TargetNotEmpty(f"restore target {final} is not empty (replace it to restore "
                                 "beside it and swap; the old contents are kept)")
        if isinstance(repo_root, Path):
            real_repo, real_final = repo_root.resolve(), final.resolve()
            if real_repo.is_relative_to(real_final) or real_final.is_relative_to(real_repo):
                raise ConfigError(f"restore target {final} holds the repository {real_repo} "
                                  "being read (or lies inside it): restore somewhere else")
        probe = _existing(final.parent)
        if not probe.is_dir():
            raise ConfigError(f"cannot create restore target {final}: {probe}: Not a "
                              "directory")
        dev = os.stat(probe).st_dev
        total, _ = need.get(dev, (0, probe))
        need[dev] = (total + size // max(len(finals), 1), probe)
    for total, probe in need.values():
        vfs = os.statvfs(probe)
        free = vfs.f_bavail * vfs.f_frsize
        if total * ROOM_MARGIN > free:
            raise TargetTooSmall(f"restore needs {int(total * ROOM_MARGIN):,} bytes free beside "
                                 f"the target on {probe}'s file system, {free:,} are free: the "
                                 "old contents stay until the restore is checked")


def planned_finals(target: str, paths: list[str]) -> list[tuple[Path, bool]]:
    """The places a restore of a source backed up from ``paths`` into ``target`` would
    replace, known before any snapshot is read (each taken for a directory)."""
    if "://" in target:
        raise ConfigError(f"{target} is not a directory: a files restore writes into a "
                          "directory")
    path = Path(os.path.abspath(Path(target).expanduser()))
    roots = [p for p in paths if str(p).strip("/")]
    if str(path) == "/":
        chosen = [Path(os.path.abspath(p)) for p in roots]
    else:
        chosen = [path]
    return [(swap.real_target(p) if not p.exists() or p.is_dir() else p, p.is_dir()
             or not p.exists()) for p in chosen]


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def staging_root(place: Place, staging: Path) -> Path:
    """Where the staged part is written inside the staging directory."""
    return staging if place.is_dir else staging / place.final.name


def check_roots(found: list[Place]) -> None:
    """Before anything is written: the live directories an include-restore moves entries in
    and out of are real directories (no symlink followed) on the target's file system."""
    for place in found:
        if not place.roots or not place.final.is_dir():
            continue
        dev = os.stat(place.final).st_dev
        for rel in place.roots:
            swap.refuse_links(place.final, rel)
            parent = _existing(place.final / rel).parent if "/" in rel else place.final
            if os.stat(parent).st_dev != dev:
                raise ConfigError(f"{parent} is on another file system than {place.final}: "
                                  "an include-restore moves entries by rename")


def swap_place(place: Place, staging: Path, when: str) -> tuple[Path | None, list[str]]:
    """Put a checked staged part in its place. Returns where the previous contents were kept
    (None when there was nothing) and, for an include-restore, the paths (relative to the
    place) whose entries it replaced: the kept directory then holds only those."""
    if not place.is_dir:
        kept = swap.swap_entry(staging / place.final.name, place.final, when)
        os.rmdir(staging)
        return kept, []
    if not place.roots or not swap.holds_data(place.final):
        if place.node is None:
            _take_mode(place.final, staging)
        return swap.swap_in(staging, place.final, when), []
    kept_root = swap.kept_path(place.final, staging, when)
    kept_root.mkdir(mode=0o700)  # even empty: the undo removes the entries the restore added
    for rel in place.roots:
        new, old = staging / rel, place.final / rel
        if not (new.exists() or new.is_symlink()):
            continue
        swap.refuse_links(place.final, rel)
        _make_parents(staging, place.final, rel)
        if old.exists() or old.is_symlink():
            (kept_root / rel).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.rename(old, kept_root / rel)
        os.rename(new, old)
    shutil.rmtree(staging)
    return kept_root, list(place.roots)


def _take_mode(old: Path, new: Path) -> None:
    """A staged whole-snapshot root has no entry of its own: it gets the mode and owner of
    the directory it replaces, or the usual mode of a new directory."""
    if old.is_dir():
        st = os.stat(old)
        if os.geteuid() == 0:
            os.chown(new, st.st_uid, st.st_gid)
        os.chmod(new, st.st_mode & 0o7777)
    else:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(new, 0o777 & ~umask)


def _make_parents(staging: Path, final: Path, rel: str) -> None:
    """Create the directories leading to ``final/rel`` that are missing, with the staged
    directories' modes."""
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if not (final / sub).exists():
            os.mkdir(final / sub)
            shutil.copystat(staging / sub, final / sub, follow_symlinks=False)


def remove_staging(staged: list[Path]) -> None:
    """Remove staging directories of a restore that stopped before its swap."""
    for path in staged:
        shutil.rmtree(path, ignore_errors=True)
