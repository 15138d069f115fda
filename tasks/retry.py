"""Retry policy shared by the tasks: transient faults only, exponential backoff with jitter."""

from __future__ import annotations

import os
import re
from typing import Any

from prefect.tasks import exponential_backoff

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    LockedError,
    NotSupported,
    SnapshotNotFound,
    SourceError,
    SourceUnreachable,
    StorageError,
    TargetNotEmpty,
    WrongKey,
)
from strongroom.repository.presence import PacksVanished

PERMANENT = (IntegrityError, ConfigError, WrongKey, SnapshotNotFound, NotSupported,
             TargetNotEmpty)
TRANSIENT = (StorageError, LockedError, ConnectionError, TimeoutError)
# Storage errors that waiting does not cure: wrong credentials or permissions, a bad bucket
# name, archived objects not staged, object lock, a read-only or wrong local path.
PERMANENT_STORAGE_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                           "AllAccessDisabled", "InvalidBucketName", "AccountProblem",
                           "InvalidObjectState", "InvalidStorageClass", "MethodNotAllowed",
                           "NotImplemented", "InvalidArgument", "InvalidRequest"}
PERMANENT_STORAGE_TEXT = ("not staged", "no bucket in S3 URL", "refusing to delete",
                          "Permission denied", "Read-only file system", "Not a directory",
                          "Is a directory",
                          # a restore that swapped part of its target in: retrying would swap
                          # it again and hide the first kept contents from the undo
                          "already swapped in")
_CODE_RE = re.compile(r"failed: ([A-Za-z]+)$")


def _permanent_storage(exc: StorageError) -> bool:
    text = str(exc)
    match = _CODE_RE.search(text)
    return bool(match and match.group(1) in PERMANENT_STORAGE_CODES) or any(
        part in text for part in PERMANENT_STORAGE_TEXT)


def is_transient(exc: BaseException | None) -> bool:
    """True for faults worth retrying: storage/network trouble (throttling, 5xx, unreachable),
    a lock held, a server restarting; not bad credentials, permissions or paths."""
    if isinstance(exc, PacksVanished):  # a new attempt stores the vanished data anew
        return True
    if exc is None or isinstance(exc, PERMANENT):
        return False
    if isinstance(exc, StorageError) and _permanent_storage(exc):
        return False
    if isinstance(exc, (*TRANSIENT, SourceUnreachable)):
        return True
    if _source_says_transient(exc):  # a kind's own transient exception types
        return True
    if isinstance(exc, SourceError):  # misconfigured or unreadable, not merely unreachable
        return False
    return type(exc).__name__ in {"EndpointConnectionError", "ConnectTimeoutError",
                                  "ReadTimeoutError", "ConnectionClosedError"}


def _source_says_transient(exc: BaseException) -> bool:
    """Whether any registered source kind counts ``exc`` as transient (by exception type)."""
    from strongroom.sources import registry

    return any(source.is_transient(exc) for source in registry.all_sources())


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure is transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except BaseException as raised:  # noqa: BLE001 - whatever the result raises is the failure
        exc = raised
    return is_transient(exc if isinstance(exc, BaseException) else None)


def _base_delay() -> float:
    try:
        return float(os.environ.get("STRONGROOM_RETRY_DELAY_S", "10"))
    except ValueError:
        return 10.0


# Keyword arguments for @task on anything that talks to storage or a source.
RETRYING: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=_base_delay()),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
}
