"""Repository locks: shared for backups (many at once), exclusive for garbage collection.

A lock is a small JSON file ``locks/<random id>`` naming its holder (host name, host id, boot
id, pid, pid namespace) and a lease: a heartbeat thread rewrites it every ``lease / 5``
seconds while it is held. Time comes from the storage, never from comparing two hosts'
clocks: a lock's age is the storage's clock now minus the storage's date of its last write
(:meth:`Backend.list_times`). A lock does not block anyone when its holder is gone:

* written under this same boot and pid namespace, and the pid is not a live process
  (kill -9, a crash): at once (a cloned VM or another container has another boot or namespace,
  so a host name shared with it never counts);
* otherwise, when its lease has not been renewed within the lease period by storage time.

The holder measures its own lease with ``CLOCK_BOOTTIME`` (which counts a suspend) from the
moment it sent its last successful renewal. Before each renewal it checks its lock file is
still there; once the file is gone, or more than :data:`HOLD_FRACTION` of the lease passed
without a renewal (a pause, a suspend, a storage outage), the lock is lost for good: it is
never written again and :meth:`RepositoryLock.ensure_held` raises, so the holder writes no
index, snapshot or deletion after others may have judged it dead.

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

from strongroom.clock import boottime
from strongroom.errors import LockedError, StrongroomError
from strongroom.hostid import boot_id, host_id
from strongroom.storage.base import Backend

# Seconds a lock stays valid without a heartbeat; the holder renews it every LEASE / 5.
LEASE = float(os.environ.get("STRONGROOM_LOCK_LEASE", 300))
# How long a backup waits for an exclusive lock (a prune sweep) to go before failing.
BACKUP_LOCK_WAIT = float(os.environ.get("STRONGROOM_LOCK_WAIT", 600))
STALE_AFTER = 1800  # locks without a lease (written by older versions)
# A holder stops trusting its lock once this share of the lease passed since the last renewal
# it sent: others judge it stale only after the whole lease by the storage's clock.
HOLD_FRACTION = 0.8


def _pid_namespace() -> str:
    """The pid namespace of this process ('' where unknown): pids of another container on
    the same host name are not ours to check."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def read_locks(backend: Backend) -> list[tuple[str, dict[str, Any]]]:
    """Every readable lock, each with ``age``: seconds since its last write by the storage's
    clock (the clock is read before the listing, so an age is never too long)."""
    now = backend.clock()
    out = []
    for key, _size, stored in list(backend.list_times("locks/")):
        try:
            info = json.loads(backend.get(key))
            float(info["time"])
        except (ValueError, StrongroomError):
            continue  # vanished or half-visible: not a live lock
        except (TypeError, KeyError, AttributeError):
            continue  # not a lock this program wrote (damaged): no holder to wait for
        info["age"] = now - stored
        out.append((key, info))
    return out


def holder_is_dead(info: dict[str, Any]) -> bool:
    """True if the lock was written under this boot and pid namespace and its pid is gone."""
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    if not boot_id() or info.get("boot_id") != boot_id():
        return False  # another machine (or a clone of this one, or an earlier boot)
    if info.get("pidns", "") != _pid_namespace():
        return False  # another container on this kernel: its pids are not ours
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


def is_stale(info: dict[str, Any]) -> bool:
    """True if the lease ran out without a renewal, by the storage's clock (``age`` from
    :func:`read_locks`; an old lock without a lease after STALE_AFTER)."""
    try:
        lease = float(info.get("lease") or STALE_AFTER)
        age = float(info["age"])
    except (TypeError, ValueError, KeyError):
        return True
    return age > lease


def is_gone(info: dict[str, Any]) -> bool:
    """True if the lock must not block anyone: its lease ran out or its process is dead."""
    return is_stale(info) or holder_is_dead(info)


class RepositoryLock:
    """A held lock; a daemon thread renews its lease until it is released."""

    def __init__(self, backend: Backend, key: str, info: dict[str, Any]) -> None:
        self.backend = backend
        self.key = key
        self.info = info
        self.lease = float(info.get("lease") or LEASE)
        self._renewed = boottime()  # when the last renewal that succeeded was sent
        self.lost = ""  # why the lock is no longer ours ('' while held)
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
        info = {"exclusive": exclusive, "host": socket.gethostname(), "host_id": host_id(),
                "boot_id": boot_id(), "pid": os.getpid(), "pidns": _pid_namespace(),
                "purpose": purpose, "time": time.time(), "lease": LEASE}
        _check_conflicts(backend, exclusive, own=None)
        lock = cls(backend, f"locks/{secrets.token_hex(16)}", info)
        try:
            lock._renewed = boottime()
            backend.put(lock.key, json.dumps(info).encode())
            _check_conflicts(backend, exclusive, own=lock.key)  # a racing taker sees ours
            lock._thread.start()
            return lock
        except BaseException:  # LockedError, or Ctrl-C: never leave our lock file behind
            lock.release()
            raise

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 5):
            with self._beat:
                if self._stop.is_set() or not self._renew():
                    return

    def _renew(self) -> bool:
        """One renewal (caller holds ``_beat``); False once the lock is lost."""
        if self._lease_ran_out():
            return False
        # Timed from before the check: an answer that comes late (a slow request, a freeze
        # mid-request) must not date the renewal after a deletion it could not see.
        sent = boottime()
        try:
            if not self.backend.exists(self.key):
                self.lost = "another process removed it (its lease was judged run out)"
                return False
            if self._lease_ran_out():  # the check took long: others may have judged it dead
                return False
            self.info["time"] = time.time()
            self.backend.put(self.key, json.dumps(self.info).encode())
        except StrongroomError:
            return True  # retried at the next beat; ensure_held() says when time is up
        self._renewed = sent
        return True

    def _lease_ran_out(self) -> bool:
        """True (and the lock lost for good) once HOLD_FRACTION of the lease passed, by the
        boot clock, since the last renewal that succeeded was sent."""
        if not self.lost and boottime() - self._renewed > self.lease * HOLD_FRACTION:
            self.lost = (f"its lease of {self.lease:g} s ran out without a renewal (the "
                         "process was paused or suspended, or the storage unreachable)")
        return bool(self.lost)

    def ensure_held(self) -> None:
        """LockedError once the lock may belong to nobody: it was removed, or its lease ran
        out by this host's boot clock (others may then have taken the repository). A holder
        calls it before every write that others' judgement of its liveness protects."""
        self._lease_ran_out()
        if self.lost or self._stop.is_set():
            why = self.lost or "it was released"
            raise LockedError(f"lost the repository lock ({self.info.get('purpose')}): {why}; "
                              "stopped before writing anything that depends on it")

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
