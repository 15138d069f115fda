"""S3 restore targets: the block's settings pointed at ``s3://bucket/prefix``, and the checks
made before a recovery overwrites anything there.

A target is a bucket and prefix of the block's S3 service (its endpoint, region and keys): a
safety snapshot of a target reads that bucket and prefix, never the block's own.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from strongroom.errors import ConfigError
from strongroom.sources.s3.client import endpoint_of, error_code, errors, make_client


def settings_for(settings: dict[str, Any], target: str) -> dict[str, Any] | None:
    """The block's ``settings`` with the target's bucket and prefix; None for anything but
    ``s3://bucket[/prefix]``."""
    if not target.startswith("s3://"):
        return None
    bucket, _, prefix = target[5:].partition("/")
    if not bucket:
        return None
    return {**settings, "bucket": bucket, "prefix": prefix}


def in_place(settings: dict[str, Any]) -> str:
    return f"s3://{settings['bucket']}/{settings.get('prefix') or ''}"


def _client(settings: dict[str, Any]) -> Any:
    return make_client(settings.get("endpoint_url") or None, settings.get("region"), 4,
                       settings.get("access_key_id"), settings.get("secret_access_key"))


def bucket_holds(settings: dict[str, Any], what: str = "restore target") -> bool | None:
    """Whether objects are stored under the bucket and prefix ``settings`` name; None when
    the bucket does not exist. Unreachable, denied: SourceError."""
    from strongroom.sources.s3.restore import holds_objects

    client = _client(settings)
    bucket = str(settings["bucket"])
    endpoint = settings.get("endpoint_url") or None
    with errors(what, endpoint, bucket):
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket"):
                return None
            raise
        return holds_objects(client, bucket, str(settings.get("prefix") or ""))


def check(settings: dict[str, Any], target: str, *, replace: bool) -> list[str]:
    """ConfigError for a target that is not ``s3://bucket/prefix``; SourceError when the
    service cannot be reached or refuses the block's credentials; TargetNotEmpty for objects
    under the prefix without ``replace`` (the restore's own rule)."""
    from strongroom.sources.s3.restore import refuse_busy

    pointed = settings_for(settings, target)
    if pointed is None:
        raise ConfigError(f"an s3 source cannot restore into {target!r} (expected "
                          "s3://bucket/prefix)")
    bucket, prefix = pointed["bucket"], pointed["prefix"]
    where = endpoint_of(pointed.get("endpoint_url") or None) or "AWS S3"
    busy = bucket_holds(pointed)
    if busy is None:
        return [f"bucket {bucket!r} does not exist at {where}: the restore creates it only "
                "with create_bucket=yes"]
    refuse_busy(bucket, prefix, busy, replace)
    if busy:
        return [f"s3://{bucket}/{prefix} holds objects: those with the snapshot's keys are "
                "overwritten, the others are left alone"]
    return [f"s3://{bucket}/{prefix} at {where} is empty"]


def gaps(meta: dict[str, Any]) -> list[str]:
    """What a bucket backup left out, from its snapshot's meta."""
    out = []
    if meta.get("skipped_archived"):
        keys = ", ".join(meta.get("skipped_keys") or [])
        out.append(f"{meta['skipped_archived']} archived object(s) not readable without a "
                   f"restore request: {keys}")
    if meta.get("vanished"):
        out.append(f"{meta['vanished']} object(s) deleted while the bucket was being read")
    return out
