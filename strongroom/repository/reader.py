"""Reading a snapshot: walk its trees and stream files back, verifying every blob."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from strongroom.errors import IntegrityError, SnapshotNotFound
from strongroom.repository.model import Node, Snapshot

if TYPE_CHECKING:
    from strongroom.repository.repo import Repository

PREFETCH = 8
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob-fetch")


def _new_pool_after_fork() -> None:
    # A forked child has none of the parent's threads: a copied executor would queue forever.
    global _pool
    _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob-fetch")


os.register_at_fork(after_in_child=_new_pool_after_fork)


class SnapshotReader:
    def __init__(self, repo: Repository, snap: Snapshot) -> None:
        self.repo = repo
        self.snap = snap
        self._maps: dict[str, dict[str, Node]] = {}
        self._dirs: dict[str, str] = {"": snap.tree}
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Make every running :meth:`chunks` give up at its next chunk (Ctrl-C, a failure
        elsewhere: no need to finish files of a restore that stopped)."""
        self._stopping.set()

    def share_stop(self, flag: Any) -> None:
        """Take the stop signal from ``flag`` (anything with ``is_set()``, e.g. a flag shared
        with the process that forked this one) instead of this process's own."""
        self._stopping = flag

    def pool(self, workers: int, name: str) -> ReaderPool:
        """Worker threads for reading this snapshot's files: leaving the ``with`` block on an
        exception stops running files at their next chunk and starts no queued one."""
        return ReaderPool(self, workers, name)

    def _check_stop(self) -> None:
        if self._stopping.is_set():
            raise Stopped(f"snapshot {self.snap.short_id}: reading stopped")

    def _fail(self, path: str, exc: IntegrityError) -> IntegrityError:
        return IntegrityError(f"snapshot {self.snap.short_id}: {path or '/'}: {exc}")

    def tree(self, tree_id: str, path: str = "") -> list[Node]:
        try:
            return self.repo.load_tree(tree_id)
        except IntegrityError as exc:
            raise self._fail(path, exc) from None

    def entries(self, tree_id: str, path: str = "") -> dict[str, Node]:
        """A tree's nodes by name (cached per reader)."""
        found = self._maps.get(tree_id)
        if found is None:
            if len(self._maps) > 4096:
                self._maps.clear()
            found = self._maps[tree_id] = {n.name: n for n in self.tree(tree_id, path)}
        return found

    def walk(self, path: str = "") -> Iterator[tuple[str, Node]]:
        """Every node under ``path``, depth first, sorted by name; a file or symlink ``path``
        is its own listing (it has no tree, which is not damage)."""
        if not path.strip("/"):
            yield from self._walk(self.snap.tree, "")
            return
        node = self.node(path)
        if node.type != "dir":
            yield path.strip("/"), node
        elif node.subtree:
            yield from self._walk(node.subtree, path.strip("/"))

    def _walk(self, tree_id: str, prefix: str) -> Iterator[tuple[str, Node]]:
        # An explicit stack of open directories, not recursion: trees may be deeper than
        # Python's recursion limit.
        stack = [(prefix, iter(self.tree(tree_id, prefix)))]
        while stack:
            prefix, nodes = stack[-1]
            node = next(nodes, None)
            if node is None:
                stack.pop()
                continue
            if node.name in ("", ".", "..") or "/" in node.name or "\0" in node.name:
                raise IntegrityError(f"snapshot {self.snap.short_id}: {prefix or '/'}: "
                                     f"invalid entry name {node.name!r}")
            full = f"{prefix}/{node.name}" if prefix else node.name
            yield full, node
            if node.type == "dir" and node.subtree:
                stack.append((full, iter(self.tree(node.subtree, full))))

    def _dir_tree(self, path: str) -> str:
        """Tree id of directory ``path`` ('' for the root); '' if it is not a directory."""
        found = self._dirs.get(path)
        missing = []
        while found is None:  # climb to the nearest known ancestor ('' always is)...
            missing.append(path)
            path = path.rpartition("/")[0]
            found = self._dirs.get(path)
        for path in reversed(missing):  # ...and come back down, without recursion
            parent, _, name = path.rpartition("/")
            node = self.entries(found, parent).get(name) if found else None
            found = node.subtree if node is not None and node.type == "dir" else ""
            if len(self._dirs) > 65536:
                self._dirs = {"": self.snap.tree}
            self._dirs[path] = found
        return found

    def node(self, path: str) -> Node:
        path = path.strip("/")
        parent, _, name = path.rpartition("/")
        tree_id = self._dir_tree(parent) if path else ""
        found = self.entries(tree_id, parent).get(name) if tree_id else None
        if found is None:
            raise SnapshotNotFound(f"{path!r} is not in snapshot {self.snap.short_id}")
        return found

    def node_or_none(self, path: str) -> Node | None:
        try:
            return self.node(path)
        except SnapshotNotFound:
            return None

    def chunks(self, node: Node, path: str = "") -> Iterator[bytes]:
        """The file's plaintext chunks in order, fetched ahead in parallel, each verified;
        the whole file's SHA-256 is checked at the end."""
        self._check_stop()
        if len(node.content) <= 1:  # most files: one blob, read on this thread (no hand-off)
            try:
                data = (self.repo.load_blob(bytes.fromhex(node.content[0]), "D")
                        if node.content else b"")
            except IntegrityError as exc:
                raise self._fail(path, exc) from None
            self._check_whole(node, path, len(data), hashlib.sha256(data).hexdigest())
            if data:
                yield data
            return
        window: deque[Future[bytes]] = deque()
        ids = iter(node.content)
        sha = hashlib.sha256()
        size = 0

        def fill() -> None:
            for bid in ids:
                window.append(_pool.submit(self.repo.load_blob, bytes.fromhex(bid), "D"))
                if len(window) >= PREFETCH:
                    break

        fill()
        try:
            while window:
                self._check_stop()
                data = window.popleft().result()
                fill()
                sha.update(data)
                size += len(data)
                yield data
        except IntegrityError as exc:
            raise self._fail(path, exc) from None
        finally:
            for fut in window:
                fut.cancel()
        self._check_whole(node, path, size, sha.hexdigest())

    def _check_whole(self, node: Node, path: str, size: int, digest: str) -> None:
        if size != node.size or (node.sha256 and digest != node.sha256):
            raise IntegrityError(f"snapshot {self.snap.short_id}: {path}: restored contents "
                                 "do not match the recorded SHA-256")

    def open(self, path: str) -> io.BufferedReader:
        """A streaming, verifying reader of one file."""
        node = self.node(path)
        if node.type != "file":
            raise SnapshotNotFound(f"{path!r} in snapshot {self.snap.short_id} is not a file")
        return io.BufferedReader(_ChunkStream(self.chunks(node, path)), buffer_size=1 << 20)

    def read_bytes(self, path: str) -> bytes:
        with self.open(path) as fh:
            return fh.read()


class Stopped(Exception):  # noqa: N818 (not an error: the reader was told to stop)
    """Raised in a file being read after :meth:`SnapshotReader.stop`."""


class ReaderPool(ThreadPoolExecutor):
    """A thread pool that, left on an exception, stops its reader's files at the next chunk
    and cancels the files not started, instead of writing every queued one to the end."""

    def __init__(self, reader: SnapshotReader, workers: int, name: str) -> None:
        super().__init__(max_workers=workers, thread_name_prefix=name)
        self.reader = reader

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc_type is not None:
            self.reader.stop()
            self.shutdown(wait=True, cancel_futures=True)
            return False
        return super().__exit__(exc_type, exc, tb)


class _ChunkStream(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(buf), len(self._buf))
        buf[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
