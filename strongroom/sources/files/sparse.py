"""Sparse files: holes found with SEEK_DATA/SEEK_HOLE on backup, left unwritten on restore.

A snapshot keeps a sparse file's whole logical content (holes read as zeros, which deduplicate
to one blob) plus the list of its holes; the restore seeks over those ranges instead of writing
zeros, so the file takes as little disk as it did. A range recorded as a hole that is not all
zeros in the snapshot (the file changed while it was read) is written: never lost.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable

MAX_HOLES = 10_000  # beyond this the rest of the file is restored dense


def maybe_sparse(st: os.stat_result) -> bool:
    """True when the file takes less disk than its size: only then look for holes."""
    return st.st_blocks * 512 < st.st_size


def find_holes(fd: int, size: int) -> list[list[int]]:
    """[offset, length] of every hole of the open file ``fd`` below ``size``; [] when the file
    system cannot tell. Leaves the file offset at 0."""
    holes: list[list[int]] = []
    pos = 0
    try:
        while pos < size and len(holes) < MAX_HOLES:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no data after pos, a hole to the end
                    raise
                data = size
            if data > pos:
                holes.append([pos, min(data, size) - pos])
            if data >= size:
                break
            pos = os.lseek(fd, data, os.SEEK_HOLE)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return holes


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def write_sparse(fd: int, chunks: Iterable[bytes], holes: list[list[int]], size: int,
                 progress: Callable[[int], None] | None = None) -> None:
    """Write ``chunks`` (the file's whole content) to ``fd``, skipping the all-zero parts
    that fall in ``holes``; the file ends at ``size``."""
    pos = 0
    h = 0
    for chunk in chunks:
        end = pos + len(chunk)
        view = memoryview(chunk)
        cur = pos
        while cur < end:
            while h < len(holes) and holes[h][0] + holes[h][1] <= cur:
                h += 1
            if h < len(holes) and holes[h][0] <= cur:
                stop = min(end, holes[h][0] + holes[h][1])
                if chunk.count(0, cur - pos, stop - pos) != stop - cur:
                    _pwrite_all(fd, view[cur - pos:stop - pos], cur)
            else:
                stop = min(end, holes[h][0]) if h < len(holes) else end
                _pwrite_all(fd, view[cur - pos:stop - pos], cur)
            cur = stop
        pos = end
        if progress:
            progress(len(chunk))
    os.ftruncate(fd, size)
