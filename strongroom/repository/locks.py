"""Repository locks: shared for backups (many at once), exclusive for garbage collection.

A lock is a small JSON file ``locks/<random id>`` refreshed every few minutes; one not refreshed
for ``STALE_AFTER`` seconds (a killed process) is ignored and may be removed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random

from strongroom.errors import LockedError, StrongroomError
from strongroom.storage.base import Backend

REFRESH_EVERY = 300
# How long a backup waits for an exclusive lock (a prune sweep) to go before failing.
BACKUP_LOCK_WAIT = float(os.environ.get("STRONGROOM_LOCK_WAIT", 600))
STALE_AFTER = 1800


def read_locks(backend: Backend) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, _ in backend.list("locks/"):
        try:
            info = json.loads(backend.get(key))
            float(info["time"])
        except (ValueError, StrongroomError):
            continue  # vanished or half-visible: not a live lock
        except (TypeError, KeyError, AttributeError):
            continue  # not a lock this program wrote (damaged): no holder to wait for
        out.append((key, info))
    return out


def is_stale(info: dict[str, Any], now: float | None = None) -> bool:
    return (now or time.time()) - float(info.get("time", 0)) > STALE_AFTER


class RepositoryLock:
    """A held lock; refreshes itself in a daemon thread until released."""

    def __init__(self, backend: Backend, key: str, info: dict[str, Any]) -> None:
        self.backend = backend
        self.key = key
        self.info = info
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, daemon=True, name="lock-refresh")
        self._thread.start()

    @classmethod
    def acquire(cls, backend: Backend, exclusive: bool, purpose: str = "",
                wait_s: float = 0.0) -> RepositoryLock:
        """Take a lock, waiting up to ``wait_s`` seconds for a conflicting one to go; then
        raise LockedError naming its holder."""
        for attempt in Retrying(stop=stop_after_delay(wait_s), wait=wait_random(0.2, 2.0),
                                retry=retry_if_exception_type(LockedError), reraise=True):
            with attempt:
                return cls._try(backend, exclusive, purpose)
        raise AssertionError("unreachable")

    @classmethod
    def _try(cls, backend: Backend, exclusive: bool, purpose: str) -> RepositoryLock:
        info = {"exclusive": exclusive, "host": socket.gethostname(), "pid": os.getpid(),
                "purpose": purpose, "time": time.time()}
        key = f"locks/{secrets.token_hex(16)}"
        _check_conflicts(backend, exclusive, own=None)
        try:
            backend.put(key, json.dumps(info).encode())
            _check_conflicts(backend, exclusive, own=key)  # a racing taker sees ours, we see it
            return cls(backend, key, info)
        except BaseException:  # LockedError, or Ctrl-C: never leave our lock file behind
            backend.delete(key)
            raise

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_EVERY):
            self.info["time"] = time.time()
            try:
                self.backend.put(self.key, json.dumps(self.info).encode())
            except StrongroomError:
                pass  # retried at the next refresh

    def release(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self.backend.delete(self.key)
        except StrongroomError:
            pass  # becomes stale and is ignored


def _check_conflicts(backend: Backend, exclusive: bool, own: str | None) -> None:
    for key, info in read_locks(backend):
        if key == own or is_stale(info):
            continue
        if exclusive or info.get("exclusive"):
            kind = "exclusively " if info.get("exclusive") else ""
            raise LockedError(f"repository is locked {kind}by {info.get('purpose') or 'a job'} "
                              f"on {info.get('host')} (pid {info.get('pid')}); retry later")
