"""Local filesystem backend: atomic writes by temp file, fsync and rename."""

from __future__ import annotations

import errno
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, IntegrityError, StorageError
from strongroom.storage.base import Backend, MissingObject
from strongroom.storage.registry import register_scheme

TEMP_PREFIX = ".tmp-"  # objects being written; a killed writer leaves them behind


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


class LocalBackend(Backend):
    kind = "local"
    OPTIONS: dict[str, Any] = {}  # a directory takes no options

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path).expanduser().absolute()
        self.url = str(self.root)
        _refuse_non_directory(self.root)
        self._fds: dict[str, int] = {}
        self._fd_lock = threading.Lock()
        # a backend dropped without close() (a long-running worker opens one per flow run)
        # must not keep up to 65 descriptors open for the life of the process
        weakref.finalize(self, _close_all, self._fds)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._write(key, data, os.replace)

    def put_if_absent(self, key: str, data: bytes | memoryview) -> bool:
        """Write a complete temp file, then hard-link it into place: link(2) fails if the name
        exists (atomic like O_EXCL, and readers never see a partial object)."""
        try:
            self._write(key, data, _link_new)
        except _Exists:
            return False
        return True

    def _write(self, key: str, data: bytes | memoryview,
               place: Callable[[Path, Path], None]) -> None:
        path = self._path(key)
        tmp = path.parent / f"{TEMP_PREFIX}{path.name}-{os.getpid()}-{threading.get_ident()}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            place(tmp, path)
            tmp.unlink(missing_ok=True)  # left by a link, gone after a rename
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # e.g. the parent is not a directory: there is no temp file to remove
            if exc.errno == errno.ENOSPC:
                raise StorageError(f"no space left on device writing {path}") from None
            raise StorageError(f"cannot write {path}: {exc.strerror}") from None
        except BaseException:  # Ctrl-C, or _Exists: leave no temp file behind
            tmp.unlink(missing_ok=True)
            raise

    def leftovers(self, older_than_s: float = 0.0) -> Iterator[tuple[str, int]]:
        """Temp files of killed writers: older than ``older_than_s`` by the file system's clock
        and not named by a live process of this host (``.tmp-<name>-<pid>-<thread>``)."""
        now = self.clock()
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    continue
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                if now - st.st_mtime < older_than_s or _writer_alive(name):
                    continue
                yield full.relative_to(self.root).as_posix(), st.st_size

    def remove_leftover(self, name: str) -> None:
        if not Path(name).name.startswith(TEMP_PREFIX):
            raise StorageError(f"{name} is not a temporary file")
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {self._path(name)}: {exc.strerror}") from None

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise MissingObject(f"missing object {key} in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self._path(key)}: {exc.strerror}") from None

    def _fd(self, key: str) -> int:
        """A private duplicate of the cached descriptor of ``key`` (the caller closes it): the
        cache may close its own copy at any time, and the number be reused for another file."""
        with self._fd_lock:
            fd = self._fds.get(key)
            if fd is None:
                if len(self._fds) > 64:
                    for old in self._fds.values():
                        os.close(old)
                    self._fds.clear()
                fd = os.open(self._path(key), os.O_RDONLY)
                self._fds[key] = fd
            return os.dup(fd)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            fd = self._fd(key)
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise MissingObject(f"missing object {key} in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self._path(key)}: {exc.strerror}") from None
        if len(data) != length:
            raise IntegrityError(f"object {key} is truncated (wanted {length} bytes at {offset})")
        return data

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for key, size, _stored in self.list_times(prefix):
            yield key, size

    def list_times(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    continue
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                yield full.relative_to(self.root).as_posix(), st.st_size, st.st_mtime

    def clock(self) -> float:
        """The file system's time: the modification time of a probe file created now (on a
        network file system, the server's clock). This host's clock where nothing can be
        written (a read-only medium: no other writer's objects to age either)."""
        probe = self.root / f"{TEMP_PREFIX}clock-{os.getpid()}-{threading.get_ident()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"t")  # a write dates the file on every file system
                return os.fstat(fd).st_mtime
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError:
            return time.time()

    def delete(self, key: str) -> None:
        with self._fd_lock:
            fd = self._fds.pop(key, None)
            if fd is not None:
                os.close(fd)
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {self._path(key)}: {exc.strerror}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise MissingObject(f"missing object {key} in {self.url}") from None

    def close(self) -> None:
        with self._fd_lock:
            _close_all(self._fds)

    def describe(self) -> dict[str, object]:
        st = os.stat(self.root) if self.root.exists() else None
        return {"url": self.url, "kind": self.kind, "device": st.st_dev if st else None}


class _Exists(Exception):  # noqa: N818 (internal signal)
    """put_if_absent found the name taken."""


def _link_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _Exists from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # A file system without hard links: claim the name with O_EXCL, then fill it (a
        # reader may see it empty for a moment, never half-written by another writer).
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise _Exists from None
        os.replace(tmp, path)


def _writer_alive(temp_name: str) -> bool:
    """True if the pid in a temp file's name is a live process here (it may be writing)."""
    try:
        pid = int(temp_name.rsplit("-", 2)[-2])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except OSError:
        return True  # alive, another user's
    return True


def _refuse_non_directory(root: Path) -> None:
    """ConfigError (bad input, exit 2) if ``root`` names an existing file: a repository path
    that is a file is a mistake, not a storage failure. (A path running through a file is
    left to the first write, which reports it as the storage failure it looks like.)"""
    try:
        if root.exists() and not root.is_dir():
            raise ConfigError(f"repository path {root} is a file, not a directory")
    except OSError:
        pass  # unreadable: the first real access reports it


def open_local(url: str, options: dict[str, Any]) -> LocalBackend:
    """A local backend for a path or ``file://`` URL (no options apply)."""
    return LocalBackend(url.removeprefix("file://"))


register_scheme("file", open_local, LocalBackend.OPTIONS)
