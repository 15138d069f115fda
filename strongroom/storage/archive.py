"""Archive tier on S3: data packs in GLACIER/DEEP_ARCHIVE, Object Lock retention and legal hold.

Index and snapshot files stay in STANDARD so a repository can be listed and planned without a
restore; data packs must be staged (``restore_object``) before they can be read. Objects under
retention or legal hold are never deleted by Strongroom: :func:`protection` says why, and prune
and forget skip them. The checks work on any S3 backend, whatever options it was opened with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from strongroom.errors import ConfigError, StorageError
from strongroom.storage.base import Backend
from strongroom.storage.s3 import S3Backend

ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
LOCKED_PREFIXES = ("data/", "index/", "snapshots/")
ARCHIVE_OPTIONS = ("storage_class", "object_lock_mode", "object_lock_days", "legal_hold")
SETTINGS_KEY = "archive.json"  # written at init: the tier settings later opens fall back to
# Typical AWS staging times (hours) by storage class and retrieval tier: (low, high).
STAGING_HOURS = {
    ("GLACIER", "Expedited"): (1 / 60, 5 / 60), ("GLACIER", "Standard"): (3, 5),
    ("GLACIER", "Bulk"): (5, 12), ("DEEP_ARCHIVE", "Standard"): (9, 12),
    ("DEEP_ARCHIVE", "Bulk"): (24, 48),
}


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class ArchiveS3Backend(S3Backend):
    """An S3 backend writing data packs to an archive storage class, and locking what it writes.

    Options: ``storage_class`` (GLACIER | DEEP_ARCHIVE | STANDARD; default DEEP_ARCHIVE with
    ``tier=archive``, else STANDARD), ``object_lock_mode`` (COMPLIANCE | GOVERNANCE),
    ``object_lock_days``, ``legal_hold`` (true/false).
    """

    def __init__(self, url: str, storage_class: str | None = None,
                 object_lock_mode: str | None = None, object_lock_days: int | str = 0,
                 legal_hold: bool | str = False, tier: str | None = None,
                 **options: Any) -> None:
        super().__init__(url, **options)
        default = "DEEP_ARCHIVE" if tier == "archive" else "STANDARD"
        self.storage_class = (storage_class or default).upper()
        if self.storage_class not in (*ARCHIVE_CLASSES, "STANDARD"):
            raise ConfigError(f"storage_class must be GLACIER, DEEP_ARCHIVE or STANDARD, got "
                              f"{storage_class!r}")
        self.lock_mode = object_lock_mode.upper() if object_lock_mode else None
        if self.lock_mode and self.lock_mode not in LOCK_MODES:
            raise ConfigError(f"object_lock_mode must be COMPLIANCE or GOVERNANCE, got "
                              f"{object_lock_mode!r}")
        try:
            self.lock_days = int(object_lock_days or 0)
        except ValueError:
            raise ConfigError(f"object_lock_days must be a number, got {object_lock_days!r}"
                              ) from None
        if self.lock_mode and self.lock_days <= 0:
            raise ConfigError("object_lock_mode needs object_lock_days > 0")
        self.legal_hold = _truthy(legal_hold)

    def write_options(self, key: str) -> dict[str, Any]:
        """The storage class and lock headers for an object about to be written."""
        extra: dict[str, Any] = {}
        if key.startswith("data/") and self.storage_class != "STANDARD":
            extra["StorageClass"] = self.storage_class
            extra["ChecksumAlgorithm"] = "SHA256"  # S3 checks the upload: no read-back later
        if key.startswith(LOCKED_PREFIXES) and (self.lock_mode or self.legal_hold):
            extra["ChecksumAlgorithm"] = "SHA256"  # S3 wants an integrity header with a lock
            if self.lock_mode:
                extra["ObjectLockMode"] = self.lock_mode
                extra["ObjectLockRetainUntilDate"] = (datetime.now(UTC)
                                                      + timedelta(days=self.lock_days))
            if self.legal_hold:
                extra["ObjectLockLegalHoldStatus"] = "ON"
        return extra

    def put(self, key: str, data: bytes | memoryview, **extra: Any) -> None:
        if key.startswith(LOCKED_PREFIXES):
            self._check_lock_enabled()
        elif key == "config" and not self.exists("config"):  # init, once all its checks passed:
            super().put(SETTINGS_KEY, json.dumps(self.settings()).encode())  # keep the settings
        super().put(key, data, **{**self.write_options(key), **extra})

    def _check_lock_enabled(self) -> None:
        """S3 refuses lock headers on a bucket without Object Lock ('InvalidRequest'): say so."""
        if (self.lock_mode or self.legal_hold) and not _bucket_has_lock(self):
            raise ConfigError(f"bucket {self.bucket} does not have Object Lock enabled, which "
                              "object_lock_mode and legal_hold need (S3 enables it when a bucket "
                              "is created): use a bucket created with Object Lock")

    def delete(self, key: str) -> None:
        reason = protection(self, key)
        if reason:
            raise StorageError(f"refusing to delete {key}: {reason}")
        super().delete(key)

    def ensure_bucket(self) -> None:
        """Create the bucket (with Object Lock enabled when locks are wanted) if missing."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            self._check_lock_enabled()  # before init writes anything there
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=bool(
                    self.lock_mode or self.legal_hold))
            except (BotoCoreError, ClientError) as exc:
                raise self._fail(exc, "create bucket", "") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "head bucket", "") from None

    def settings(self) -> dict[str, Any]:
        return {"storage_class": self.storage_class, "object_lock_mode": self.lock_mode,
                "object_lock_days": self.lock_days, "legal_hold": self.legal_hold}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tier": "archive", "storage_class": self.storage_class,
                "object_lock_mode": self.lock_mode, "object_lock_days": self.lock_days,
                "legal_hold": self.legal_hold}


def stored_settings(backend: S3Backend) -> dict[str, Any]:
    """The archive settings an archive repository was created with ({} for others), so a copy
    or backup that forgets ``--to-option storage_class=... object_lock_...`` still archives
    and locks what it writes."""
    try:
        raw = backend.client.get_object(Bucket=backend.bucket,
                                        Key=backend._key(SETTINGS_KEY))["Body"].read()
        settings = json.loads(raw)
    except (BotoCoreError, ClientError, ValueError):
        return {}  # not an archive repository (or unreadable: later calls report the cause)
    return {k: v for k, v in settings.items() if k in ARCHIVE_OPTIONS and v not in (None, "")}


def wants_archive(options: dict[str, Any]) -> bool:
    """True if backend options ask for the archive tier (an archive class, a lock or a hold)."""
    if options.get("tier") == "archive" or options.get("object_lock_mode"):
        return True
    if str(options.get("storage_class") or "STANDARD").upper() != "STANDARD":
        return True  # an archive class, or a typo the archive backend refuses
    return _truthy(options.get("legal_hold", False))


# ---- protection: what may never be deleted ------------------------------------------------

_lock_enabled: dict[tuple[str, str], bool] = {}


def _bucket_has_lock(backend: S3Backend) -> bool:
    key = (str(backend.endpoint), backend.bucket)
    if key not in _lock_enabled:
        try:
            conf = backend.client.get_object_lock_configuration(Bucket=backend.bucket)
            enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "ObjectLockConfigurationNotFound" not in code:
                raise StorageError(f"cannot read object lock settings of bucket "
                                   f"{backend.bucket}: {code}") from None
            enabled = False
        except BotoCoreError as exc:
            raise StorageError(f"cannot read object lock settings of bucket {backend.bucket}: "
                               f"{type(exc).__name__}") from None
        _lock_enabled[key] = enabled
    return _lock_enabled[key]


def head(backend: Backend, key: str) -> dict[str, Any]:
    """S3 HEAD of an object (empty dict for non-S3 backends)."""
    if not isinstance(backend, S3Backend):
        return {}
    try:
        return backend.client.head_object(Bucket=backend.bucket, Key=backend._key(key))
    except (BotoCoreError, ClientError) as exc:
        raise backend._fail(exc, "head", key) from None


def protection(backend: Backend, key: str, now: datetime | None = None) -> str | None:
    """Why ``key`` must not be deleted (legal hold, unexpired retention), or None."""
    if not isinstance(backend, S3Backend) or not _bucket_has_lock(backend):
        return None
    info = head(backend, key)
    reasons = []
    if info.get("ObjectLockLegalHoldStatus") == "ON":
        reasons.append("legal hold is on")
    until = info.get("ObjectLockRetainUntilDate")
    if until is not None and until > (now or datetime.now(UTC)):
        mode = info.get("ObjectLockMode", "retention")
        reasons.append(f"object lock {mode} until {until.date().isoformat()}")
    return "; ".join(reasons) or None


def is_archived(info: dict[str, Any]) -> bool:
    return info.get("StorageClass") in ARCHIVE_CLASSES


def staged(info: dict[str, Any]) -> bool:
    """True if an object is readable now (not archived, or its restore has completed)."""
    return not is_archived(info) or 'ongoing-request="false"' in (info.get("Restore") or "")


# ---- staging archived objects -------------------------------------------------------------

@dataclass
class StagingReport:
    requested: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    storage_classes: set[str] = field(default_factory=set)
    retrieval_tier: str = "Standard"

    def estimate(self) -> str:
        """A human estimate of the wait, from AWS's published retrieval times."""
        waiting = len(self.requested) + len(self.in_progress)
        if not waiting:
            return "all objects are readable now"
        spans = [STAGING_HOURS.get((c, self.retrieval_tier), (3, 12))
                 for c in self.storage_classes or {"GLACIER"}]
        low, high = max(s[0] for s in spans), max(s[1] for s in spans)
        unit = (lambda h: f"{h * 60:.0f} min") if high < 1 else (lambda h: f"{h:g} h")
        return (f"{waiting} object(s) staging ({', '.join(sorted(self.storage_classes))}, "
                f"{self.retrieval_tier} retrieval): typically {unit(low)} to {unit(high)}")

    def as_dict(self) -> dict[str, Any]:
        return {"requested": len(self.requested), "in_progress": len(self.in_progress),
                "ready": len(self.ready), "storage_classes": sorted(self.storage_classes),
                "retrieval_tier": self.retrieval_tier, "estimate": self.estimate()}


def stage(backend: Backend, keys: Iterable[str], days: int = 7,
          retrieval_tier: str = "Standard") -> StagingReport:
    """Ask S3 to restore every archived object in ``keys`` for ``days`` days (idempotent)."""
    if retrieval_tier not in ("Expedited", "Standard", "Bulk"):
        raise ConfigError("retrieval tier must be Expedited, Standard or Bulk")
    report = StagingReport(retrieval_tier=retrieval_tier)
    if not isinstance(backend, S3Backend):
        report.ready = list(keys)
        return report
    for key in keys:
        info = head(backend, key)
        if staged(info):
            report.ready.append(key)
            continue
        report.storage_classes.add(info["StorageClass"])
        if 'ongoing-request="true"' in (info.get("Restore") or ""):
            report.in_progress.append(key)
            continue
        try:
            backend.client.restore_object(
                Bucket=backend.bucket, Key=backend._key(key),
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": retrieval_tier}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "RestoreAlreadyInProgress":
                raise backend._fail(exc, "restore", key) from None
        report.requested.append(key)
    return report


def wait_staged(backend: Backend, keys: list[str], timeout_s: float, poll_s: float = 30.0,
                on_wait: Callable[[int, int], None] | None = None) -> None:
    """Poll until every key is readable; StorageError with the count left after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pending = list(keys)
    while True:
        pending = [k for k in pending if not staged(head(backend, k))]
        if on_wait:
            on_wait(len(keys) - len(pending), len(keys))
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise StorageError(f"{len(pending)} of {len(keys)} archived object(s) are still "
                               "staging; run the restore again later")
        time.sleep(min(poll_s, max(0.1, deadline - time.monotonic())))
