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
from collections.abc import Generator, Iterator
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


def base_chunks(repo: Any, snap: Snapshot, ahead: int = 2) -> Generator[bytes, None, None]:
    """The base backup's tar stream as verified chunks, in order, with no copy: ``ahead``
    parts are read at once, each on its own thread (blobs decrypted and checked, then the
    part's SHA-256), so checking one part overlaps with the caller writing the previous."""
    reader = repo.reader(snap)
    names = sorted(p for p, n in reader.walk() if p.startswith(PREFIX) and n.type == "file")
    if not names:
        yield from reader.chunks(reader.node("base.tar"), "base.tar")
        return

    def whole(name: str) -> list[bytes]:
        return list(reader.chunks(reader.node(name), name))

    pool = ThreadPoolExecutor(max_workers=max(1, ahead), thread_name_prefix="pg-read")
    window: deque[Future[list[bytes]]] = deque()
    todo = deque(names)
    try:
        while todo or window:
            while todo and len(window) < max(1, ahead):
                window.append(pool.submit(whole, todo.popleft()))
            chunks = window.popleft().result()
            chunks.reverse()
            while chunks:
                yield chunks.pop()  # let go of each chunk once written
    finally:
        reader.stop()  # a caller that gave up: parts still being read stop at their next chunk
        pool.shutdown(wait=False, cancel_futures=True)


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self.current:
            nxt = next(self.chunks, None)
            if nxt is None:
                return 0
            self.current = memoryview(nxt)
        n = min(len(buf), len(self.current))
        buf[:n] = self.current[:n]
        self.current = self.current[n:]
        return n

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        super().close()


def open_base(repo: Any, snap: Snapshot, ahead: int = 2) -> IO[bytes]:
    """The base backup's tar stream as a file object (see :func:`base_chunks`)."""
    return io.BufferedReader(_ChunkReader(base_chunks(repo, snap, ahead)), buffer_size=1 << 20)


def base_paths(reader: Any) -> list[str]:
    """The paths that make up a base backup (for reuse by incrementals)."""
    return [p for p, n in reader.walk() if n.type == "file"
            and (p.startswith(PREFIX) or p in ("base.tar", "backup_manifest"))]
