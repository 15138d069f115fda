"""The storage interface every backend implements.

Besides plain object storage, a backend answers capability questions (may this object be
deleted, can it be read now, stage it out of archive storage) with methods whose defaults suit
a store without archive tiers or object locks, so callers never ask which backend they hold.
Backends are opened through :mod:`strongroom.storage.registry`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from strongroom.errors import IntegrityError, StorageError
from strongroom.storage.staging import StagingReport, check_retrieval_tier


class MissingObject(IntegrityError):
    """The object is not in storage (never written, or deleted meanwhile)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object beyond its bytes."""

    size: int
    storage_class: str = "STANDARD"
    readable: bool = True  # False: in archive storage and not staged
    staging: bool = False  # a staging request is in progress
    lock_mode: str | None = None
    retain_until: datetime | None = None
    legal_hold: bool = False


class Backend(ABC):
    """A flat key/value store of immutable objects named by '/'-separated keys.

    ``put`` is atomic: readers see the whole object or nothing. Keys are relative to the
    repository root (``config``, ``keys/<id>``, ``data/ab/<id>``, ``index/<id>``...).
    """

    url: str
    kind: str  # the scheme's backend kind: "local" | "s3"

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
    def list_times(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """Yield ``(key, size, stored)`` for every object under ``prefix``: ``stored`` is when
        the object was last written, by the storage's clock (seconds since the epoch)."""

    @abstractmethod
    def clock(self) -> float:
        """The storage's current time (seconds since the epoch): the clock ``list_times``
        dates objects with, never this host's. Ages of objects written by other hosts are
        measured against it."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Write ``key`` only if no object has that name, atomically (of two writers at once
        exactly one wins); False if it already existed."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections and file handles."""

    def after_fork(self) -> None:  # noqa: B027 (optional hook)
        """In a child process made by ``fork``: open connections of its own (the parent's
        sockets and connection pools must not be shared)."""

    def describe(self) -> dict[str, Any]:
        """Where and on what medium the data lives (for 3-2-1 reports)."""
        return {"url": self.url, "kind": self.kind}

    # ---- capabilities (defaults: no container, no archive tier, no object lock) ------------

    def prepare(self) -> None:  # noqa: B027 (optional hook)
        """Create what ``init`` writes into (an S3 bucket) if it is missing."""

    def leftovers(self, older_than_s: float = 0.0) -> Iterator[tuple[str, int]]:
        """``(name, size)`` of temporary objects left by killed writers, written more than
        ``older_than_s`` seconds ago (never one a live local writer is still writing)."""
        return iter(())

    def remove_leftover(self, name: str) -> None:  # noqa: B027 (optional hook)
        """Remove one object named by :meth:`leftovers`."""

    def head(self, key: str) -> ObjectInfo | None:
        """Storage class, staging and lock state of ``key``; None if the backend keeps none."""
        return None

    def readable(self, key: str) -> bool:
        """False for an object sitting unstaged in archive storage."""
        return True

    def protection(self, key: str, now: datetime | None = None) -> str | None:
        """Why ``key`` must not be deleted (legal hold, unexpired retention), or None."""
        return None

    def put_readable(self, key: str, data: bytes | memoryview) -> None:
        """Write an object that must stay readable without staging (tree packs of an archive)."""
        self.put(key, data)

    def stage(self, keys: Iterable[str], days: int = 7,
              retrieval_tier: str = "Standard") -> StagingReport:
        """Ask for every archived object in ``keys`` to be readable for ``days`` (idempotent)."""
        check_retrieval_tier(retrieval_tier)
        return StagingReport(ready=list(keys), retrieval_tier=retrieval_tier)

    def wait_readable(self, keys: list[str], timeout_s: float, poll_s: float = 30.0,
                      on_wait: Callable[[int, int], None] | None = None) -> None:
        """Poll until every key is readable; StorageError with the count left after
        ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        pending = list(keys)
        while True:
            pending = [k for k in pending if not self.readable(k)]
            if on_wait:
                on_wait(len(keys) - len(pending), len(keys))
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise StorageError(f"{len(pending)} of {len(keys)} archived object(s) are still "
                                   "staging; run the restore again later")
            time.sleep(min(poll_s, max(0.1, deadline - time.monotonic())))
