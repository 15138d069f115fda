"""The ``s3://`` scheme: a plain S3 backend, or the archive tier when options (or the settings
an archive repository was created with) ask for an archive class, a lock or a hold."""

from __future__ import annotations

from typing import Any

from strongroom.storage.archive import ArchiveS3Backend, stored_settings, wants_archive
from strongroom.storage.base import Backend
from strongroom.storage.registry import register_scheme
from strongroom.storage.s3 import S3Backend


def open_s3(url: str, options: dict[str, Any]) -> Backend:
    """An S3 backend for ``url``; the archive backend for an archive repository."""
    if wants_archive(options):  # archive tier: storage class, object lock, legal hold
        return ArchiveS3Backend(url, **options)
    backend = S3Backend(url, **options)
    settings = stored_settings(backend)  # an archive repository opened without options
    return ArchiveS3Backend(url, **{**settings, **options}) if settings else backend


register_scheme("s3", open_s3, ArchiveS3Backend.OPTIONS)
