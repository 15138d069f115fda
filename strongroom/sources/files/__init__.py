"""Files and directories on this host: the ``files`` source kind.

``backup.py`` walks and reads paths into a snapshot, ``restore.py`` writes one back (every file
verified before it appears) into staging directories that ``placing.py`` swaps in,
``compare.py`` checks a restored tree byte for byte, ``meta.py`` (owners, modes, times,
extended attributes), ``sparse.py`` (holes) and ``patterns.py`` hold what they share.
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
from strongroom.sources.files.placing import check_places, planned_finals
from strongroom.sources.files.restore import restore_files
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
        """Options: ``numeric_owner`` (true/false): owners by number only, never by name;
        ``layout``: ``paths`` (the default: the snapshot's absolute paths under the target)
        or ``contents`` (a one-path snapshot's contents into the target itself); ``check``:
        ``blobs`` (the default: every blob checked against its id as it is read),
        ``structure`` (also every staged entry looked at) or ``bytes`` (also every staged
        file hashed) before the swap.
        A target of ``/`` puts every path back where it was."""
        unknown = sorted(set(options) - {"numeric_owner", "layout", "check", "keep_setuid"})
        if unknown:
            raise ConfigError(f"files restores take no restore options other than "
                              f"numeric_owner, layout, check and keep_setuid (got "
                              f"{', '.join(unknown)})")
        layout = str(options.get("layout", "paths"))
        check = str(options.get("check", "blobs"))
        if layout not in ("paths", "contents") or check not in ("blobs", "structure", "bytes"):
            raise ConfigError("restore option layout must be paths or contents, check "
                              "blobs, structure or bytes")
        return restore_files(repo, snap, target, include, replace, progress,
                             numeric_owner=_flag("numeric_owner",
                                                 options.get("numeric_owner", False)),
                             layout=layout, check=check,  # type: ignore[arg-type]
                             keep_setuid=_flag("keep_setuid", options.get("keep_setuid", False)))

    def verify_restored(self, repo: Repository, snap: Snapshot, target: str, *,
                        include: list[str], report: dict[str, Any]) -> dict[str, Any]:
        """Every place the restore wrote (``report["places"]``), byte for byte."""
        optional = bool(report.get("not_restored_devices"))
        found = [p.split("=", 1) for p in str(report.get("places") or "").split(";") if p] \
            or [["/", str(Path(target).expanduser().absolute())]]
        out: dict[str, Any] = {}
        for sub, final in found:
            one = compare_tree(repo, snap, Path(final), include, devices_optional=optional,
                               sub=sub.strip("/"), setuid_dropped=bool(
                                   report.get("not_restored_setuid")
                                   or report.get("not_restored_mode")))
            out = {**one, "files": out.get("files", 0) + one["files"],
                   "files_identical": out.get("files_identical", 0) + one["files_identical"]}
        return out

    def check_target(self, target: str, *, settings: dict[str, Any], replace: bool,
                     size: int) -> list[str]:
        """A directory path (``/``: every path where it was); room beside it; not empty
        only when replacing."""
        if "://" in target or not Path(target).expanduser().is_absolute():
            raise ConfigError(f"restore target {target!r} of files source must be an "
                              "absolute directory")
        finals = planned_finals(target, list(settings.get("paths") or []))
        check_places(None, finals, replace, size)
        return []

    def safety_backup(self, repo: Repository, *, name: str, target: str, replace: bool,
                      settings: dict[str, Any]) -> Snapshot | None:
        """None: a files restore keeps the previous contents beside the target itself."""
        return None

    def recovery_options(self, target: str) -> dict[str, Any]:
        """The source path's contents into ``target`` (``/``: every path in place), every
        staged file hashed before the swap."""
        return {"check": "bytes", **({"layout": "contents"} if target != "/" else {})}

    def in_place_target(self, settings: dict[str, Any]) -> str | None:
        """``/``: every backed-up path restored where it was."""
        return "/"

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """An empty scratch directory under ``workdir`` (a recovery drill's target)."""
        from strongroom.sources.files.drill_target import scratch_directory

        return scratch_directory(workdir)


register(FilesSource())

__all__ = ["BackupResult", "FilesSource", "backup_files", "choose_parent", "compare_tree",
           "excluded", "included", "restore_files"]
