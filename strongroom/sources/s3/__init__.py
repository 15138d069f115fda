"""S3 / MinIO buckets: the ``s3`` source kind.

``backup.py`` lists a bucket or prefix (optionally every version) and stores its objects,
``restore.py`` writes them into a bucket and verifies them, ``index.py`` is the snapshot layout
both share, ``client.py`` the boto3 client and one-line errors. boto3 loads only when a method
runs, so listing the registry stays cheap.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from strongroom.sources.contract import (
    ObjectiveClass,
    Progress,
    ProgressUnit,
    ScratchTarget,
    Source,
)
from strongroom.sources.registry import register

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

# A bucket "snapshot" (hourly tier, safety snapshot) is an incremental listing.
_KINDS = ("full", "incremental", "differential")
# Block fields the backup reads; any other field of the block is not the engine's concern.
_SETTINGS = ("prefix", "region", "access_key_id", "secret_access_key", "versions")


class S3Source(Source):
    """A bucket or prefix; settings are the block's bucket, prefix, endpoint_url, region,
    access_key_id, secret_access_key and versions."""

    kind: ClassVar[str] = "s3"
    default_class: ClassVar[ObjectiveClass] = "files"
    progress_unit: ClassVar[ProgressUnit] = "bytes"

    def backup(self, repo: Repository, *, name: str, kind: str, tags: list[str],
               settings: dict[str, Any]) -> Snapshot:
        from strongroom.sources.s3.backup import backup_bucket

        opts = {k: settings[k] for k in _SETTINGS if settings.get(k) is not None}
        return backup_bucket(repo, settings["bucket"], name,
                             endpoint=settings.get("endpoint_url") or None,
                             kind=kind if kind in _KINDS else "incremental", tags=list(tags),
                             **opts)

    def restore(self, repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                include: list[str], options: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
        from strongroom.sources.s3.restore import check_options, restore_bucket

        check_options(options)
        return restore_bucket(repo, snap, target, replace=replace, include=list(include),
                              options=options, progress=progress)

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """A prefix in a new scratch bucket of the source's service (a drill's target)."""
        from strongroom.sources.s3.drill_target import scratch_prefix

        return scratch_prefix(settings)


register(S3Source())

__all__ = ["S3Source"]
