"""Files and directories on this host: the ``files`` source kind.

``backup.py`` walks and reads paths into a snapshot, ``restore.py`` writes one back (every file
verified before it appears), ``compare.py`` checks a restored tree byte for byte, ``target.py``
prepares a recovery's target directory, ``meta.py`` (owners, modes, times, extended attributes),
``sparse.py`` (holes) and ``patterns.py`` hold what they share.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from strongroom.errors import ConfigError
from strongroom.sources.contract import (
    ObjectiveClass,
    Progress,
    ProgressUnit,
    ScratchTarget,
    Source,
)
from strongroom.sources.files.backup import BackupResult, backup_files
from strongroom.sources.files.compare import compare_tree
from strongroom.sources.files.patterns import excluded, included
from strongroom.sources.files.restore import restore_files
from strongroom.sources.files.target import empty_directory, prepare_target
from strongroom.sources.parent import choose_parent
from strongroom.sources.registry import register

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

# a files "snapshot" (hourly tier, safety snapshot) is an incremental read
_KINDS = {"snapshot": "incremental"}


def _flag(key: str, value: object) -> bool:
    """A boolean restore option given as a bool or as text (``--restore-option k=v``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"restore option {key} must be true or false (got {value!r})")


class FilesSource(Source):
    """Paths on this host; settings are the block's ``paths`` and ``exclude`` globs."""

    kind: ClassVar[str] = "files"
    default_class: ClassVar[ObjectiveClass] = "files"
    progress_unit: ClassVar[ProgressUnit] = "bytes"
    target_is_path: ClassVar[bool] = True

    def backup(self, repo: Repository, *, name: str, kind: str, tags: list[str],
               settings: dict[str, Any]) -> Snapshot:
        result = backup_files(repo, list(settings["paths"]), name=name,
                              kind=_KINDS.get(kind, kind), tags=tags,
                              excludes=list(settings.get("exclude") or []))
        return result.snapshot

    def restore(self, repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                include: list[str], options: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
        """Options: ``numeric_owner`` (true/false): owners by number only, never by name."""
        unknown = sorted(set(options) - {"numeric_owner"})
        if unknown:
            raise ConfigError(f"files restores take no restore options other than "
                              f"numeric_owner (got {', '.join(unknown)})")
        return restore_files(repo, snap, target, include, replace, progress,
                             numeric_owner=_flag("numeric_owner",
                                                 options.get("numeric_owner", False)))

    def verify_restored(self, repo: Repository, snap: Snapshot, target: str, *,
                        include: list[str], report: dict[str, Any]) -> dict[str, Any]:
        optional = bool(report.get("not_restored_devices"))
        return compare_tree(repo, snap, Path(target).expanduser().absolute(), include,
                            devices_optional=optional)

    def safety_backup(self, repo: Repository, *, name: str, target: str, replace: bool,
                      settings: dict[str, Any]) -> Snapshot | None:
        """Refuse a non-empty target unless ``replace``; then snapshot it in full as
        ``<name>-safety`` and empty it, so the restore leaves exactly the snapshot."""
        return prepare_target(repo, name, target, replace)

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """An empty scratch directory under ``workdir`` (a recovery drill's target)."""
        from strongroom.sources.files.drill_target import scratch_directory

        return scratch_directory(workdir)


register(FilesSource())

__all__ = ["BackupResult", "FilesSource", "backup_files", "choose_parent", "compare_tree",
           "empty_directory", "excluded", "included", "prepare_target", "restore_files"]
