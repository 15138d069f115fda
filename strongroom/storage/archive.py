"""Archive tier on S3: data packs in GLACIER/DEEP_ARCHIVE, Object Lock retention and legal hold.

Index and snapshot files stay in STANDARD so a repository can be listed and planned without a
restore; data packs must be staged (``Backend.stage``) before they can be read. Objects under
retention or legal hold are never deleted by Strongroom: ``Backend.protection`` says why, and
prune and forget skip them (those checks are S3Backend methods, so they work whatever options
a backend was opened with).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from strongroom.errors import ConfigError, StorageError
from strongroom.storage import options as opt
from strongroom.storage.s3 import ARCHIVE_CLASSES, S3Backend

LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
LOCKED_PREFIXES = ("data/", "index/", "snapshots/", "audit/")  # audit: the tamper-evident log
ARCHIVE_OPTIONS = ("storage_class", "object_lock_mode", "object_lock_days", "legal_hold")
SETTINGS_KEY = "archive.json"  # written at init: the tier settings later opens fall back to


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class ArchiveS3Backend(S3Backend):
    """An S3 backend writing data packs to an archive storage class, and locking what it writes.

    Options: ``storage_class`` (GLACIER | DEEP_ARCHIVE | STANDARD; default DEEP_ARCHIVE with
    ``tier=archive``, else STANDARD), ``object_lock_mode`` (COMPLIANCE | GOVERNANCE),
    ``object_lock_days``, ``legal_hold`` (true/false).
    """

    OPTIONS: dict[str, opt.Validator] = {
        **S3Backend.OPTIONS, "storage_class": opt.choice(*ARCHIVE_CLASSES, "STANDARD"),
        "object_lock_mode": opt.choice(*LOCK_MODES), "object_lock_days": opt.whole_number(
            0, 36500), "legal_hold": opt.boolean,
        "tier": opt.lower_choice("primary", "secondary", "tertiary", "archive"),
    }

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

    def put_if_absent(self, key: str, data: bytes | memoryview, **extra: Any) -> bool:
        if key.startswith(LOCKED_PREFIXES):
            self._check_lock_enabled()
        elif key == "config" and not self.exists("config"):  # init: keep the settings too
            super().put(SETTINGS_KEY, json.dumps(self.settings()).encode())
        return super().put_if_absent(key, data, **{**self.write_options(key), **extra})

    def put_readable(self, key: str, data: bytes | memoryview) -> None:
        self.put(key, data, StorageClass="STANDARD")

    def _check_lock_enabled(self) -> None:
        """S3 refuses lock headers on a bucket without Object Lock ('InvalidRequest'): say so."""
        if (self.lock_mode or self.legal_hold) and not self.lock_enabled():
            raise ConfigError(f"bucket {self.bucket} does not have Object Lock enabled, which "
                              "object_lock_mode and legal_hold need (S3 enables it when a bucket "
                              "is created): use a bucket created with Object Lock")

    def delete(self, key: str) -> None:
        reason = self.protection(key)
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
    except (ConnectTimeoutError, ReadTimeoutError) as exc:  # say so now, not after a 2nd wait
        raise backend._fail(exc, "get", SETTINGS_KEY) from None
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
