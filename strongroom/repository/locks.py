"""Repository locks: shared for backups (many at once), exclusive for garbage collection.

A lock is a small JSON file ``locks/<random id>`` naming its holder (host, pid, pid namespace)
and a lease: a heartbeat thread rewrites it every ``lease / 5`` seconds while it is held. A lock
does not block anyone when its holder is gone:

* same host and pid namespace, and the pid is not a live process (kill -9, a crash): at once;
* otherwise, when its lease has not been renewed within the lease period (a dead host).

Locks written before leases existed carry no ``lease`` and count as stale after
``STALE_AFTER``. Hosts must agree on the time to within a fraction of the lease.

A lock this process has put stays registered until its file is deleted, and whatever is still
registered when the interpreter exits is deleted then: Ctrl-C landing between taking a lock and
the ``try`` that releases it leaves no lock file behind.
"""

from __future__ import annotations

import atexit
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

# Seconds a lock stays valid without a heartbeat; the holder renews it every LEASE / 5.
LEASE = float(os.environ.get("STRONGROOM_LOCK_LEASE", 300))
# How long a backup waits for an exclusive lock (a prune sweep) to go before failing.
BACKUP_LOCK_WAIT = float(os.environ.get("STRONGROOM_LOCK_WAIT", 600))
STALE_AFTER = 1800  # locks without a lease (written by older versions)


def _pid_namespace() -> str:
    """The pid namespace of this process ('' where unknown): pids of another container on
    the same host name are not ours to check."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


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


def holder_is_dead(info: dict[str, Any]) -> bool:
    """True if the lock's process ran on this host (same pid namespace) and is gone."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if info.get("pidns", "") != _pid_namespace():
        return False  # another container with our host name: its pids are not ours
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


def is_stale(info: dict[str, Any], now: float | None = None) -> bool:
    """True if the lease ran out without a heartbeat (or an old lock passed STALE_AFTER)."""
    try:
        lease = float(info.get("lease") or STALE_AFTER)
        age = (now or time.time()) - float(info.get("time", 0))
    except (TypeError, ValueError):
        return True
    return age > lease


def is_gone(info: dict[str, Any], now: float | None = None) -> bool:
    """True if the lock must not block anyone: its lease ran out or its process is dead."""
    return is_stale(info, now) or holder_is_dead(info)


class RepositoryLock:
    """A held lock; a daemon thread renews its lease until it is released."""

    def __init__(self, backend: Backend, key: str, info: dict[str, Any]) -> None:
        self.backend = backend
        self.key = key
        self.info = info
        self.lease = float(info.get("lease") or LEASE)
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._beat = threading.Lock()  # a renewal never rewrites the file after release
        _HELD.add(self)  # before its file exists: released at exit if nothing else does
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="lock-lease")

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
                "pidns": _pid_namespace(), "purpose": purpose, "time": time.time(),
                "lease": LEASE}
        _check_conflicts(backend, exclusive, own=None)
        lock = cls(backend, f"locks/{secrets.token_hex(16)}", info)
        try:
            backend.put(lock.key, json.dumps(info).encode())
            _check_conflicts(backend, exclusive, own=lock.key)  # a racing taker sees ours
            lock._thread.start()
            return lock
        except BaseException:  # LockedError, or Ctrl-C: never leave our lock file behind
            lock.release()
            raise

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 5):
            started = time.monotonic()
            with self._beat:
                if self._stop.is_set():
                    return
                self.info["time"] = time.time()
                try:
                    self.backend.put(self.key, json.dumps(self.info).encode())
                except StrongroomError:
                    continue  # retried at the next beat; ensure_held() says when it is gone
            self._renewed = started

    def ensure_held(self) -> None:
        """LockedError if the lease may have run out (heartbeats failed): others may then
        have taken the repository, so a holder about to delete must stop."""
        if self._stop.is_set() or time.monotonic() - self._renewed > self.lease * 0.8:
            raise LockedError(f"lost the repository lock ({self.info.get('purpose')}): its "
                              "lease could not be renewed; stopped")

    def release(self) -> None:
        """Delete the lock file (again, if an interrupted release did not finish)."""
        if self not in _HELD:
            return
        self._stop.set()
        with self._beat:  # a renewal under way ends before the file goes
            try:
                self.backend.delete(self.key)
            except StrongroomError:
                pass  # its lease runs out and it is ignored
        _HELD.discard(self)


# Locks of this process whose file may exist; what is left at exit is released then. A forked
# child (a backup's reader workers) holds none of its parent's.
_HELD: set[RepositoryLock] = set()
os.register_at_fork(after_in_child=_HELD.clear)


@atexit.register
def _release_held() -> None:
    for lock in list(_HELD):
        lock.release()


def clear_gone_locks(backend: Backend) -> list[str]:
    """Remove lock files whose holder is gone (dead process here, or lease run out)."""
    removed = []
    for key, info in read_locks(backend):
        if is_gone(info):
            try:
                backend.delete(key)
                removed.append(key)
            except StrongroomError:
                pass
    return removed


def _check_conflicts(backend: Backend, exclusive: bool, own: str | None) -> None:
    for key, info in read_locks(backend):
        if key == own:
            continue
        if is_gone(info):
            try:
                backend.delete(key)  # never blocks anyone: tidy it away
            except StrongroomError:
                pass
            continue
        if exclusive or info.get("exclusive"):
            kind = "exclusively " if info.get("exclusive") else ""
            raise LockedError(f"repository is locked {kind}by {info.get('purpose') or 'a job'} "
                              f"on {info.get('host')} (pid {info.get('pid')}); retry later")
