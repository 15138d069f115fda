"""A first pass over the paths of a files backup, beside the backup itself, so its progress bar
gets a total (and an ETA): the bytes the backup will read.

A full backup reads every regular file. An incremental or differential one reads only the files
changed since its parent started (new, written, renamed or re-owned files all have a newer
ctime); the others reuse the parent's data, as :mod:`strongroom.sources.files.backup` decides.
The pass only counts: it never reads file data, and errors are the backup's to report.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable

from strongroom.sources.files.patterns import excluded


class FirstPass(threading.Thread):
    """Count the bytes a files backup will read; report the total once through ``on_total``."""

    def __init__(self, paths: list[str], excludes: list[str], changed_since_ns: int | None,
                 on_total: Callable[[int], None]) -> None:
        super().__init__(name="strongroom-first-pass", daemon=True)
        self.paths = [os.path.abspath(os.path.expanduser(p)) for p in paths]
        self.excludes = excludes
        self.since = changed_since_ns
        self.on_total = on_total
        self.total = 0
        self.done = threading.Event()
        self._cancel = threading.Event()

    def stop(self) -> None:
        """Give up (the backup finished first, or was interrupted)."""
        self._cancel.set()

    def run(self) -> None:
        stack = list(reversed(self.paths))
        while stack and not self._cancel.is_set():
            path = stack.pop()
            if excluded(path, self.excludes):
                continue
            try:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    stack.extend(os.path.join(path, n) for n in sorted(os.listdir(path),
                                                                       reverse=True))
                elif stat.S_ISREG(st.st_mode) and (self.since is None
                                                   or st.st_ctime_ns >= self.since):
                    self.total += st.st_size
            except OSError:
                continue  # the backup itself reports what it cannot read
        if not self._cancel.is_set():
            self.done.set()
            self.on_total(self.total)
