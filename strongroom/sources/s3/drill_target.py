"""Scratch restore target of an S3 drill: a prefix in a new bucket of the source's service."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from strongroom.errors import SourceError
from strongroom.sources.contract import ScratchTarget


def scratch_bucket_name(bucket: str) -> str:
    """``<bucket>-drill-<hex>``, within S3's 63 characters."""
    suffix = f"-drill-{secrets.token_hex(4)}"
    return bucket[: 63 - len(suffix)].rstrip("-.") + suffix


@contextmanager
def scratch_prefix(settings: dict[str, Any]) -> Iterator[ScratchTarget]:
    """A new bucket beside the source's (same endpoint and credentials) and the prefix
    ``drill/`` in it; every object version and the bucket are deleted on exit. The source's
    own bucket is never written."""
    from strongroom.sources.s3.client import make_client

    endpoint = settings.get("endpoint_url") or None
    client = make_client(endpoint, settings.get("region"), 4, settings.get("access_key_id"),
                         settings.get("secret_access_key"))
    bucket = scratch_bucket_name(str(settings["bucket"]))
    try:
        client.create_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - the drill fails with this one-line reason
        raise SourceError(f"cannot create the scratch bucket {bucket} for the drill: "
                          f"{type(exc).__name__}") from None
    try:
        yield ScratchTarget(target=f"s3://{bucket}/drill/",
                            description=f"scratch prefix s3://{bucket}/drill/")
    finally:
        _remove_bucket(client, bucket)


def _remove_bucket(client: Any, bucket: str) -> None:
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                     for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if items:
                client.delete_objects(Bucket=bucket, Delete={"Objects": items, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - best effort; the drill's report names the bucket
        pass
