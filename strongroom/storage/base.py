"""The storage interface every backend implements, and the URL dispatcher."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any


class Backend(ABC):
    """A flat key/value store of immutable objects named by '/'-separated keys.

    ``put`` is atomic: readers see the whole object or nothing. Keys are relative to the
    repository root (``config``, ``keys/<id>``, ``data/ab/<id>``, ``index/<id>``...).
    """

    url: str
    kind: str  # "local" | "s3"

    @abstractmethod
    def put(self, key: str, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Yield ``(key, size)`` for every object under ``prefix`` (a folder such as 'data/')."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections and file handles."""

    def describe(self) -> dict[str, Any]:
        """Where and on what medium the data lives (for 3-2-1 reports)."""
        return {"url": self.url, "kind": self.kind}


def open_backend(url: str, options: dict[str, Any] | None = None) -> Backend:
    """A backend for ``url``: a filesystem path, ``file://`` URL or ``s3://bucket/prefix``."""
    options = options or {}
    if url.startswith("s3://"):
        from strongroom.storage.archive import ArchiveS3Backend, stored_settings, wants_archive

        if wants_archive(options):  # archive tier: storage class, object lock, legal hold
            return ArchiveS3Backend(url, **options)
        from strongroom.storage.s3 import S3Backend

        backend = S3Backend(url, **options)
        settings = stored_settings(backend)  # an archive repository opened without options
        return ArchiveS3Backend(url, **{**settings, **options}) if settings else backend
    from strongroom.storage.local import LocalBackend

    return LocalBackend(url.removeprefix("file://"))
