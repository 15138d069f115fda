"""Restore a files snapshot under a directory; every file is verified before it appears.

A file is written to a fresh temporary name beside its place and renamed over it only when
all its blobs were read and checked; directories get their metadata last (after their
children are written). Fifos and devices are made with mknod, sparse files get their holes
back. What a non-root restore cannot apply (owners, devices, some attributes) is counted in the
report (``not_restored_owner``, ``_devices``, ``_xattrs``, ``_acls``, ``_capabilities``,
``_mode``) and summed up in one warning, not a failure. setuid/setgid bits of files are restored
only in place as root or with ``keep_setuid`` (else counted: ``not_restored_setuid``).

Every write is made relative to the descriptor of its directory, opened one component at a time
from the staging directory's without following symlinks (:class:`_Dirs`): a symlink planted in
the staging directory, or raced in for a directory, stops the restore instead of redirecting a
write outside it.

Files are written by worker processes (one per CPU, forked from the CLI's main thread: they
inherit the opened repository, keys and index) in batches in snapshot order, so a pack's blobs
are mostly read by one worker in a row; this process walks the trees, makes directories first and
applies their metadata last. Few files, or a caller with other threads (flows), use threads.
"""

from __future__ import annotations

import errno
import gc
import itertools
import logging
import multiprocessing
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import (
    FIRST_EXCEPTION,
    Executor,
    Future,
    ProcessPoolExecutor,
)
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from strongroom.errors import StorageError, StrongroomError
from strongroom.repository import Node, Repository, Snapshot
from strongroom.repository.reader import SnapshotReader
from strongroom.sources import swap
from strongroom.sources.files import placing
from strongroom.sources.files.compare import compare_tree
from strongroom.sources.files.forking import (
    can_fork,
    child_setup,
    is_rich_refresh,
    new_flag,
    process_count,
)
from strongroom.sources.files.meta import MetaApplier
from strongroom.sources.files.patterns import included
from strongroom.sources.files.placing import Layout
from strongroom.sources.files.sparse import write_sparse

WORKERS = 4
BATCH_FILES = 32  # small files handed to a worker at once
BATCH_BYTES = 4 * 1024 * 1024
PROCESS_MIN_FILES = 256  # fewer files: threads (forking workers costs more than it saves)
PROCESS_BATCH_FILES = 128  # to worker processes: fewer, larger hand-offs
PROGRESS_STEP = 1 << 20  # a worker process reports progress per MiB, not per chunk
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# directories on the way down: search only (no read permission needed), never a symlink
_WALK_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DIR_FDS = 32  # directory descriptors a writer keeps open (files come in snapshot order)
_DEVICE_TYPES = {"fifo": stat.S_IFIFO, "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK}
log = logging.getLogger("strongroom")
# how a staged restore is checked before its swap
Check = Literal["blobs", "structure", "bytes"]


def restore_files(repo: Repository, snap: Snapshot, target: str | Path,
                  includes: list[str] | None = None, replace: bool = False,
                  progress: Callable[[int], None] | None = None, *,
                  numeric_owner: bool = False, layout: Layout = "paths",
                  check: Check = "blobs", keep_setuid: bool = False) -> dict[str, Any]:
    """Restore a files snapshot into ``target`` (see :mod:`placing` for ``layout`` and the
    in-place target ``/``); every file is verified before it appears.

    Each place is written into a staging directory beside it, checked there (``check``:
    "blobs" every blob against its id as it is read, the default; "structure" also every
    entry there with its type and size afterwards; "bytes" also every file's SHA-256 and
    mode) and only then swapped in; what it held is kept beside it
    (``<place>.before-restore-<time>``, the report's ``kept``). A restore that stops before
    the swap leaves the target as it was. Owners map by user/group name when the name exists
    here, else by number; with ``numeric_owner`` by number only. Files keep setuid/setgid
    bits in place (the path they were backed up from) as root, or with ``keep_setuid``."""
    reader = repo.reader(snap)
    includes = includes or []
    for inc in includes:  # a mistyped --include must not "restore" nothing successfully
        if inc.strip("/"):
            reader.node(inc)
    found = placing.places(reader, snap, target, layout, includes)
    placing.check_places(repo, [(p.final, p.is_dir) for p in found], replace,
                         snap.stats.bytes_total)
    placing.check_roots(found)
    with ExitStack() as held:
        for place in found:
            held.enter_context(swap.target_lock(place.final))
        return _stage_and_swap(repo, snap, reader, found, target, includes, progress,
                               numeric_owner=numeric_owner, check=check,
                               keep_setuid=keep_setuid)


def _stage_and_swap(repo: Repository, snap: Snapshot, reader: SnapshotReader,
                    found: list[placing.Place], target: str | Path, includes: list[str],
                    progress: Callable[[int], None] | None, *, numeric_owner: bool,
                    check: Check, keep_setuid: bool) -> dict[str, Any]:
    """Stage every place, check each, then swap them in (the target lock held)."""
    when = swap.stamp()
    meta = MetaApplier(numeric_owner)
    staged: list[Path] = []
    files = total = 0
    try:
        for place in found:
            staging = swap.staging_dir(place.final, when)
            staged.append(staging)
            root = placing.staging_root(place, staging)
            meta.drop_setuid = not keep_setuid and not (meta.as_root and _in_place(place))
            n, size = _write_part(reader, place, root, includes, meta, progress)
            files, total = files + n, total + size
            if check == "blobs":  # every blob was checked as it was read: trusted as written
                continue
            compare_tree(repo, snap, root, includes, sub=place.sub, hash_files=check == "bytes",
                         devices_optional=bool(meta.shortfall.counts.get("devices")),
                         setuid_dropped=meta.drop_setuid or "mode" in meta.shortfall.counts)
    except BaseException as exc:
        placing.remove_staging(staged)
        raise _stopped(exc, target) from None
    kept: list[str] = []
    partial: list[str] = []
    try:
        for place, staging in zip(found, staged, strict=True):
            where, roots = placing.swap_place(place, staging, when)
            if where is not None:
                kept.append(str(where))
            if roots:
                partial.append(f"{where}={','.join(roots)}")
    except BaseException as exc:
        placing.remove_staging(staged)
        done = "; ".join(kept) or "none"
        raise StorageError(f"restore stopped while swapping in: {_one_line(exc)}; already "
                           f"swapped in, the old contents kept at: {done}") from None
    report: dict[str, Any] = {"snapshot": snap.id, "target": str(target), "files": files,
                              "bytes": total, "checked": check,
                              "places": ";".join(f"/{p.sub}={p.final}" for p in found)}
    if kept:
        report["kept"] = ";".join(kept)
    if partial:  # kept directories holding only these paths (an include-restore)
        report["kept_only"] = ";".join(partial)
    if meta.shortfall.counts:
        # flat counts: reports of recovery flows keep only plain values
        report |= {f"not_restored_{k}": n for k, n in sorted(meta.shortfall.counts.items())}
        log.warning("warning: %s", meta.shortfall.summary())
    return report


def _in_place(place: placing.Place) -> bool:
    """Whether ``place`` is the very path its part was backed up from."""
    return bool(place.sub) and os.path.realpath(place.final) == os.path.realpath(
        "/" + place.sub)


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if isinstance(exc, StrongroomError) else f"{type(exc).__name__}: {text}"


def _stopped(exc: BaseException, target: str | Path) -> BaseException:
    """The error a restore stopped by ``exc`` before its swap raises: the target unchanged."""
    untouched = f"{target} was not changed (the partial copy beside it was removed)"
    if isinstance(exc, BrokenProcessPool):
        return StorageError(f"restore stopped: a restore worker process died (out of "
                            f"memory?); {untouched}")
    if isinstance(exc, StrongroomError):
        return type(exc)(f"{exc}; restore stopped: {untouched}")
    if isinstance(exc, OSError):
        return StorageError(f"restore stopped: {exc.filename}: {exc.strerror}; {untouched}")
    return exc


def _write_part(reader: SnapshotReader, place: placing.Place, root: Path, includes: list[str],
                meta: MetaApplier, progress: Callable[[int], None] | None) -> tuple[int, int]:
    """Write ``place``'s part of the snapshot under the fresh directory ``root`` (a file
    part: as ``root``); returns files and bytes written."""
    names = _TempNames()
    dirs: list[tuple[str, Node]] = []
    links: dict[tuple[int, int], str] = {}
    hardlinks: list[tuple[str, str]] = []
    skip = len(place.sub) + 1 if place.sub else 0
    files = total = 0
    home = root if place.is_dir else root.parent  # the staging directory: ours, private
    base = _Base(str(home), os.open(home, _DIR_FLAGS))
    opened = _Dirs(base)
    try:
        if place.is_dir and place.node is not None:
            dirs.append(("", place.node))  # the part's own directory: the staging root
        with _Workers(reader, meta, progress, names, base) as workers:  # Ctrl-C: next chunk
            batch: list[tuple[str, Node, str]] = []
            batch_bytes = 0
            for rel, node in reader.walk(place.sub):
                if not included(rel, includes):
                    continue
                dest = rel[skip:] if place.is_dir else root.name  # relative to ``home``
                if node.type == "dir":
                    _mkdir(opened, dest)
                    dirs.append((dest, node))
                elif node.type == "symlink":
                    parent, name = opened.parent(dest)
                    os.symlink(node.target, name, dir_fd=parent)
                    meta.apply_at(parent, name, node, base.show(dest))
                elif node.nlink > 1 and (node.dev, node.inode) in links:
                    hardlinks.append((links[(node.dev, node.inode)], dest))
                elif node.type in _DEVICE_TYPES:
                    if _make_special(opened, dest, node, meta):
                        if node.nlink > 1:
                            links[(node.dev, node.inode)] = dest
                        parent, name = opened.parent(dest)
                        meta.apply_at(parent, name, node, base.show(dest))
                else:
                    if node.nlink > 1:
                        links[(node.dev, node.inode)] = dest
                    # small files go to the workers in batches: a task per file costs more
                    # than writing a small one
                    batch.append((rel, node, dest))
                    batch_bytes += node.size
                    if len(batch) >= workers.batch_files or batch_bytes >= BATCH_BYTES:
                        workers.submit(batch)
                        batch, batch_bytes = [], 0
                    files += 1
                    total += node.size
            if batch:
                workers.submit(batch)
            workers.wait()
            for first, dest in hardlinks:
                _hardlink(opened, first, dest)
        for dest, node in reversed(dirs):  # after their children: times and modes hold
            _apply_dir(opened, dest, node, meta)
    finally:
        opened.close()
        os.close(base.fd)
    return files, total


@dataclass(frozen=True)
class _Base:
    """The staging directory a part is written under: its path (for messages only) and the
    descriptor every write is made relative to (inherited by forked workers)."""

    path: str
    fd: int

    def show(self, rel: str) -> str:
        return f"{self.path}/{rel}" if rel else self.path


class _Dirs:
    """Descriptors of directories under a :class:`_Base`, each opened relative to its
    parent's without following a symlink; the last ``DIR_FDS`` stay open (files come in
    snapshot order, so mostly the same directory in a row). One per thread."""

    def __init__(self, base: _Base) -> None:
        self.base = base
        self._open: OrderedDict[str, int] = OrderedDict()

    def fd(self, rel: str) -> int:
        """The directory ``rel`` ("" the staging directory itself)."""
        if not rel:
            return self.base.fd
        fd = self._open.get(rel)
        if fd is not None:
            self._open.move_to_end(rel)
            return fd
        # down from the nearest open ancestor, a component at a time
        have, todo = rel, []
        while have and have not in self._open:
            have, _, name = have.rpartition("/")
            todo.append(name)
        fd = self._open[have] if have else self.base.fd
        for name in reversed(todo):
            have = f"{have}/{name}" if have else name
            try:
                fd = os.open(name, _WALK_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _not_followed(exc, self.base.show(have)) from None
            self._open[have] = fd
            if len(self._open) > DIR_FDS:
                os.close(self._open.popitem(last=False)[1])
        return fd

    def parent(self, rel: str) -> tuple[int, str]:
        """The descriptor of ``rel``'s directory, and ``rel``'s name in it."""
        parent, _, name = rel.rpartition("/")
        return self.fd(parent), name

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


def _not_followed(exc: OSError, shown: str) -> OSError:
    """The error of a directory that could not be opened: a symlink is named as one."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return OSError(exc.errno, "a symlink or file where a restored directory should be "
                       "(never followed)", shown)
    return OSError(exc.errno, exc.strerror, shown)


def _apply_dir(opened: _Dirs, rel: str, node: Node, meta: MetaApplier) -> None:
    """A restored directory's metadata, through a descriptor of it."""
    if not rel:
        meta.apply_fd(opened.base.fd, node, opened.base.path)
        return
    parent, name = opened.parent(rel)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        raise _not_followed(exc, opened.base.show(rel)) from None
    try:
        meta.apply_fd(fd, node, opened.base.show(rel))
    finally:
        os.close(fd)


def _hardlink(opened: _Dirs, first: str, dest: str) -> None:
    """``dest`` as another name of the entry ``first`` (a symlink itself, never followed)."""
    src_parent, src_name = opened.parent(first)
    src_parent = os.dup(src_parent)  # opening ``dest``'s directory may close it
    try:
        dst_parent, dst_name = opened.parent(dest)
        os.link(src_name, dst_name, src_dir_fd=src_parent, dst_dir_fd=dst_parent,
                follow_symlinks=False)
    finally:
        os.close(src_parent)


class _Workers:
    """Writes batches of files: in worker processes (forked: they inherit the opened
    repository, its keys and index, so nothing is derived again) once more than
    ``PROCESS_MIN_FILES`` files are to be written, else in threads of this process. Batches
    before that are held back until the choice is made. Left on an exception, running files
    stop at their next chunk and queued ones never start (Ctrl-C)."""

    def __init__(self, reader: SnapshotReader, meta: MetaApplier,
                 progress: Callable[[int], None] | None, names: _TempNames,
                 base: _Base) -> None:
        self.reader, self.meta, self.progress, self.names = reader, meta, progress, names
        self.base = base
        self._held: list[list[tuple[str, Node, str]]] = []
        self._held_files = 0
        self._pool: Executor | None = None
        self._procs = False
        self._futures: list[Future[Any]] = []
        self._done = 0  # bytes of the worker processes already reported
        self._counter: Any = None
        self._stop: Any = None
        self.batch_files = BATCH_FILES

    def __enter__(self) -> _Workers:
        return self

    def submit(self, batch: list[tuple[str, Node, str]]) -> None:
        if self._pool is None:
            self._held.append(batch)
            self._held_files += len(batch)
            if self._held_files >= PROCESS_MIN_FILES:
                self._start(processes=_can_fork())
            return
        self._submit(batch)
        if self._procs:
            self._report()

    def wait(self) -> None:
        if self._pool is None:
            self._start(processes=False)
        if not self._procs:
            for fut in self._futures:
                fut.result()
            return
        pending: set[Future[Any]] = set(self._futures)
        while pending:
            done, pending = futures_wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
            self._report()
            for fut in done:
                self._merge(fut.result())
        self._report()

    def _start(self, processes: bool) -> None:
        if processes:
            ctx = multiprocessing.get_context("fork")
            self._counter = ctx.Value("q", 0)
            self._stop = new_flag(ctx)
            self.reader.repo.index  # noqa: B018 (loaded once here, inherited by the workers)
            gc.freeze()  # the inherited objects stay shared: the collector does not touch them
            try:
                self._pool = ProcessPoolExecutor(
                    _process_count(), mp_context=ctx, initializer=_child_init,
                    initargs=(os.getpid(), self.reader, self.meta.numeric_owner,
                              self.meta.drop_setuid, self._counter, self._stop))
                self._procs = True
                self.batch_files = PROCESS_BATCH_FILES
                for batch in self._held:  # forks the workers at the first submit
                    self._submit(batch)
            finally:
                gc.unfreeze()
        else:
            self._pool = self.reader.pool(WORKERS, "restore")
            for batch in self._held:
                self._submit(batch)
        self._held = []

    def _submit(self, batch: list[tuple[str, Node, str]]) -> None:
        assert self._pool is not None
        if self._procs:
            self._futures.append(self._pool.submit(_child_write_files, batch, self.base))
        else:
            self._futures.append(self._pool.submit(_write_files, self.reader, batch, self.meta,
                                                   self.progress, self.names, self.base))

    def _report(self) -> None:
        if self.progress:
            now = self._counter.value
            if now > self._done:
                self.progress(now - self._done)
                self._done = now

    def _merge(self, short: tuple[dict[str, int], str, bool] | None) -> None:
        if short is None:
            return
        counts, first, unsupported = short
        mine = self.meta.shortfall
        with mine._lock:
            for kind, n in counts.items():
                mine.counts[kind] = mine.counts.get(kind, 0) + n
            mine.first = mine.first or first
            mine.unsupported = mine.unsupported or unsupported

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if self._pool is None:
            return False
        if exc_type is not None:
            self.reader.stop()
            if self._stop is not None:
                self._stop.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
            return False
        self._pool.shutdown(wait=True)
        return False


def _can_fork() -> bool:
    """Worker processes only from the main thread of a caller whose other threads are known
    (the CLI: our readers, rich's screen refresh): a fork copies locks other threads may hold.
    Anywhere else (a Prefect flow, a server, a library caller with threads of its own) threads
    do the work."""
    return can_fork(_known_thread)


def _known_thread(thread: threading.Thread) -> bool:
    return thread.name.startswith(("blob-fetch", "restore")) or is_rich_refresh(thread)


def _process_count() -> int:
    return process_count()


_child: dict[str, Any] = {}


def _child_init(parent: int, reader: SnapshotReader, numeric_owner: bool, drop_setuid: bool,
                counter: Any, stop: Any) -> None:
    child_setup(parent)  # Ctrl-C is the parent's; a worker dies with its parent (kill -9)
    reader.repo.after_fork()
    reader.share_stop(stop)

    unreported = [0]

    def flush() -> None:
        with counter.get_lock():
            counter.value += unreported[0]
        unreported[0] = 0

    def progress(n: int) -> None:
        unreported[0] += n
        if unreported[0] >= PROGRESS_STEP:
            flush()

    _child.update(reader=reader, numeric_owner=numeric_owner, drop_setuid=drop_setuid,
                  progress=progress, flush=flush, names=_TempNames())


def _child_write_files(batch: list[tuple[str, Node, str]], base: _Base
                       ) -> tuple[dict[str, int], str, bool] | None:
    """One batch in a worker process (``base``'s descriptor inherited at the fork); what it
    could not apply goes back to the parent."""
    meta = MetaApplier(_child["numeric_owner"], drop_setuid=_child["drop_setuid"])
    try:
        _write_files(_child["reader"], batch, meta, _child["progress"], _child["names"], base)
    finally:
        _child["flush"]()
    short = meta.shortfall
    return (short.counts, short.first, short.unsupported) if short.counts else None


def _make_special(opened: _Dirs, dest: str, node: Node, meta: MetaApplier) -> bool:
    """Make a fifo or device node; False (counted) when not allowed, as a non-root user is
    not for devices."""
    dev = os.makedev(node.rdev_major, node.rdev_minor) if node.type != "fifo" else 0
    parent, name = opened.parent(dest)
    try:
        os.mknod(name, _DEVICE_TYPES[node.type] | (node.mode & 0o777), dev, dir_fd=parent)
    except PermissionError as exc:
        meta.shortfall.add("devices", opened.base.show(dest), f"{node.type}: {exc.strerror}")
        return False
    return True


def _mkdir(opened: _Dirs, dest: str) -> None:
    """Make the directory ``dest``; one already there must be a directory, not a symlink."""
    parent, name = opened.parent(dest)
    try:
        os.mkdir(name, dir_fd=parent)
    except FileExistsError:
        if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise FileExistsError(errno.EEXIST, "exists and is not a directory (a symlink "
                                  "is never followed)", opened.base.show(dest)) from None


class _TempNames:
    """Short temporary names, unique per restore (a random stem and a counter): they fit
    beside a 255-byte name and never meet an entry of the snapshot by chance."""

    def __init__(self) -> None:
        self._stem = os.urandom(6).hex()
        self._next = itertools.count()

    def __call__(self) -> str:
        return f".{self._stem}{next(self._next):x}.strongroom-partial"


def _create_temp(parent: int, names: _TempNames) -> tuple[int, str]:
    """Create a fresh temporary file exclusively in the directory ``parent`` (never following
    or clobbering anything); returns its descriptor and name."""
    for _ in range(100):
        tmp = names()
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600, dir_fd=parent), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name")


def _write_files(reader: SnapshotReader, batch: list[tuple[str, Node, str]], meta: MetaApplier,
                 progress: Callable[[int], None] | None, names: _TempNames,
                 base: _Base) -> None:
    opened = _Dirs(base)  # this batch's own: a thread never closes another's descriptors
    try:
        for rel, node, dest in batch:
            _write_file(reader, rel, node, dest, opened, meta, progress, names)
    finally:
        opened.close()


def _write_file(reader: SnapshotReader, rel: str, node: Node, dest: str, opened: _Dirs,
                meta: MetaApplier, progress: Callable[[int], None] | None,
                names: _TempNames) -> None:
    # A fresh short name, created exclusively: it fits beside a 255-byte name, and no entry
    # of the snapshot (a symlink or file named like it) is ever followed or clobbered. Its
    # metadata goes on through the descriptor, then the rename makes it appear.
    shown = opened.base.show(dest)
    parent, name = opened.parent(dest)
    tmp = ""
    try:
        fd, tmp = _create_temp(parent, names)
        try:
            if node.holes:
                write_sparse(fd, reader.chunks(node, rel), node.holes, node.size, progress)
            else:
                for chunk in reader.chunks(node, rel):
                    _write_all(fd, chunk)
                    if progress:
                        progress(len(chunk))
            meta.apply_fd(fd, node, shown)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except OSError as exc:
        if tmp:
            _unlink_quietly(tmp, parent)
        if not str(exc.filename or "").startswith("/"):  # no name, or one relative to a fd
            raise OSError(exc.errno, exc.strerror, shown) from None
        raise
    except BaseException:
        if tmp:
            _unlink_quietly(tmp, parent)
        raise


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # short writes happen (signals, some file systems): finish
        view = memoryview(data)
        while written < len(data):
            written += os.write(fd, view[written:])


def _unlink_quietly(name: str, parent: int) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass
