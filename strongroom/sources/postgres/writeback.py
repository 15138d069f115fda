"""Early write-back of a restore's files while it still writes them.

PostgreSQL syncs the whole data directory before it replays anything (a base backup looks like
a crashed cluster), so the restored files must reach the disk before recovery starts either
way. Left to the kernel, gigabytes stay dirty until that sync, which then waits for all of
them; asking for write-back while extracting overlaps the disk with the decoding. Durability
does not depend on this: the server's own sync is still what makes the files durable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

INTERVAL = 0.25


def _syncfs() -> Any:
    """libc's ``syncfs`` (Linux), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class EarlyWriteBack:
    """``with EarlyWriteBack(dir):`` writes back the file system of ``dir`` over and over on a
    background thread until the block ends (without waiting for the last round)."""

    def __init__(self, path: Path, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._done = threading.Event()

    def __enter__(self) -> EarlyWriteBack:
        syncfs = _syncfs()
        if syncfs is not None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return self
            threading.Thread(target=self._run, args=(syncfs, fd), daemon=True,
                             name="pg-writeback").start()
        return self

    def _run(self, syncfs: Any, fd: int) -> None:
        try:
            while not self._done.wait(self.interval):
                if syncfs(fd) != 0:  # not supported here: stop asking
                    return
        finally:
            os.close(fd)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
