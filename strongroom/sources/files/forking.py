"""Worker processes forked from the CLI's main thread, for backups and restores of many files.

A forked worker inherits the opened repository, its keys and index (nothing is derived or
loaded again). Forking is safe only when every other thread of the process is known to hold
nothing the worker needs (the CLI: our own pools, the lock's lease, rich's screen refresh); a
Prefect flow, a server or a library caller with threads of its own uses threads instead.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

MAX_PROCESSES = 8
_PR_SET_PDEATHSIG = 1


def can_fork(known: Callable[[threading.Thread], bool]) -> bool:
    """True when worker processes may be forked here: Linux, the main thread, and every other
    thread ``known`` (a fork copies locks other threads may hold), more than one CPU."""
    return (sys.platform == "linux"  # fork is unsafe with macOS system frameworks
            and "fork" in multiprocessing.get_all_start_methods()
            and threading.current_thread() is threading.main_thread()
            and all(t is threading.main_thread() or known(t) for t in threading.enumerate())
            and process_count() > 1)


def is_rich_refresh(thread: threading.Thread) -> bool:
    """rich.live's screen refresh thread: it draws and holds nothing a worker needs."""
    return type(thread).__name__ == "_RefreshThread"


def process_count() -> int:
    """Worker processes to start: one per CPU this process may run on (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_PROCESSES))


class SharedFlag:
    """A stop flag every forked worker sees (one shared byte, read without a lock)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def is_set(self) -> bool:
        return bool(self._value.value)

    def set(self) -> None:
        self._value.value = 1


def new_flag(ctx: Any) -> SharedFlag:
    return SharedFlag(ctx.RawValue("b", 0))


def child_setup(parent: int) -> None:
    """First thing in a worker: Ctrl-C is the parent's to handle, and the worker dies with its
    parent (kill -9 of the CLI): it would otherwise wait for work forever, since it holds the
    task pipe's write end itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)
