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
        if kind not in _KINDS:
            kind = _snapshot_kind(repo, name, settings)
        return backup_bucket(repo, settings["bucket"], name,
                             endpoint=settings.get("endpoint_url") or None,
                             kind=kind, tags=list(tags), **opts)

    def restore(self, repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                include: list[str], options: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
        from strongroom.sources.s3.restore import check_options, restore_bucket

        check_options(options)
        return restore_bucket(repo, snap, target, replace=replace, include=list(include),
                              options=options, progress=progress)

    def settings_for_target(self, settings: dict[str, Any],
                            target: str) -> dict[str, Any] | None:
        """An ``s3://bucket/prefix`` target's bucket and prefix over the block's settings (its
        endpoint, region and keys); None for anything else."""
        from strongroom.sources.s3.target import settings_for

        return settings_for(settings, target)

    def in_place_target(self, settings: dict[str, Any]) -> str | None:
        """The block's ``s3://bucket/prefix``."""
        from strongroom.sources.s3.target import in_place

        return in_place(settings)

    def check_target(self, target: str, *, settings: dict[str, Any], replace: bool,
                     size: int) -> list[str]:
        """An ``s3://bucket/prefix`` of the block's service that answers its credentials and
        holds no objects under the prefix unless ``replace``; any other target: ConfigError.
        S3 has no capacity to check."""
        from strongroom.sources.s3.target import check

        return check(settings, target, replace=replace)

    def holds_data(self, settings: dict[str, Any]) -> bool:
        """Whether objects are stored under the bucket and prefix (a missing bucket: no)."""
        from strongroom.sources.s3.target import bucket_holds

        return bool(bucket_holds(settings, "safety snapshot"))

    def snapshot_gaps(self, snap: Snapshot) -> list[str]:
        """Archived objects skipped, objects deleted while they were being read."""
        from strongroom.sources.s3.target import gaps

        return gaps(snap.meta)

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """A prefix in a new scratch bucket of the source's service (a drill's target)."""
        from strongroom.sources.s3.drill_target import scratch_prefix

        return scratch_prefix(settings)


def _snapshot_kind(repo: Repository, name: str, settings: dict[str, Any]) -> str:
    """A "snapshot" (hourly tier, safety snapshot) lists incrementally against the latest
    snapshot of ``name`` when that was of the same bucket, prefix and version mode, else in
    full: the safety snapshots of one source are of whichever target a recovery overwrote."""
    last = repo.latest_snapshot(name, same_host=True)
    same = last is not None and last.source_kind == "s3" and (
        last.meta.get("bucket"), last.meta.get("prefix"), last.meta.get("versions")) == (
        settings["bucket"], settings.get("prefix") or "", bool(settings.get("versions")))
    return "incremental" if same else "full"


register(S3Source())

__all__ = ["S3Source"]
