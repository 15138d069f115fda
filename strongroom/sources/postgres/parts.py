"""A single tar stream stored as several parts in parallel, and read back as one stream.

The engine chunks, hashes, compresses and seals one stream on one thread; pg_basebackup gives
one stream. Cutting it into parts at tar member boundaries (and at fixed offsets inside large
members, so cuts follow content, not position) lets ``jobs`` threads store parts at once with
no loss of deduplication. Parts are ``base/part-NNNNNN``; restore concatenates them.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from strongroom.repository import Snapshot
from strongroom.sources.postgres.tarsniff import TarSniffer

PART_SIZE = 64 << 20
PREFIX = "base/part-"


def store_parts(w: Any, sniff: TarSniffer, jobs: int, part_size: int = PART_SIZE) -> int:
    """Read ``sniff`` to the end, storing parts with ``jobs`` threads; returns the count."""
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pg-part")
    slots = threading.BoundedSemaphore(max(1, jobs) + 1)  # bound memory
    futures: list[Future[Any]] = []
    count = 0

    def submit(data: bytes) -> None:
        nonlocal count
        name = f"{PREFIX}{count:06d}"
        count += 1
        slots.acquire()

        def work() -> Any:
            try:
                return w.add_stream(name, io.BytesIO(data), mode=0o600)
            finally:
                slots.release()

        futures.append(pool.submit(work))

    try:
        buf = bytearray()
        start = 0  # stream offset of buf[0]
        cuts: deque[int] = deque()
        seen = 0
        while True:
            data = sniff.read(1 << 20)
            if not data:
                break
            buf += data
            end = start + len(buf)
            cuts.extend(sniff.cuts[seen:])
            seen = len(sniff.cuts)
            while True:
                while cuts and cuts[0] < start + part_size:
                    cuts.popleft()
                if not cuts or cuts[0] > end:
                    break
                cut = cuts.popleft() - start
                submit(bytes(memoryview(buf)[:cut]))  # one copy; del from the front is O(1)
                del buf[:cut]
                start += cut
            if len(buf) >= 4 * part_size:  # no cut point for long: cut anyway
                submit(bytes(buf))
                start += len(buf)
                buf.clear()
        if buf or count == 0:
            submit(bytes(buf))
        for fut in futures:
            fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return count


class _Concat(io.RawIOBase):
    """The parts read back in order, ``ahead`` of them fetched in parallel."""

    def __init__(self, reader: Any, names: list[str], ahead: int) -> None:
        self.reader = reader
        self.names = deque(names)
        self.pool = ThreadPoolExecutor(max_workers=max(1, ahead), thread_name_prefix="pg-read")
        self.window: deque[Future[bytes]] = deque()
        self.ahead = max(1, ahead)
        self.current = memoryview(b"")
        self._fill()

    def _fill(self) -> None:
        while self.names and len(self.window) < self.ahead:
            self.window.append(self.pool.submit(self.reader.read_bytes, self.names.popleft()))

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self.current:
            if not self.window:
                return 0
            self.current = memoryview(self.window.popleft().result())
            self._fill()
        n = min(len(buf), len(self.current))
        buf[:n] = self.current[:n]
        self.current = self.current[n:]
        return n

    def close(self) -> None:
        for fut in self.window:
            fut.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().close()


def open_base(repo: Any, snap: Snapshot, ahead: int = 2) -> IO[bytes]:
    """The base backup's tar stream (parts concatenated, or a single ``base.tar``)."""
    reader = repo.reader(snap)
    names = [p for p, n in reader.walk() if p.startswith(PREFIX) and n.type == "file"]
    if not names:
        return reader.open("base.tar")
    return io.BufferedReader(_Concat(reader, sorted(names), ahead), buffer_size=1 << 20)


def base_paths(reader: Any) -> list[str]:
    """The paths that make up a base backup (for reuse by incrementals)."""
    return [p for p, n in reader.walk() if n.type == "file"
            and (p.startswith(PREFIX) or p in ("base.tar", "backup_manifest"))]
