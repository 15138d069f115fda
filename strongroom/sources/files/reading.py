"""Reading files in a backup worker process: whole small files read, chunked, hashed, sealed.

A worker (forked by the backup, see :mod:`strongroom.sources.files.forking`) gets batches of
files and returns, per file, what its node needs (holes, extended attributes, size, SHA-256)
and its chunks as ``(blob id, sealed blob or None, length)``: None for a blob the index it
inherited already has. The backup process decides what is new and packs it, so a blob is
stored once however many workers met it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from strongroom.errors import StrongroomError
from strongroom.repository.format import BLOB_DATA, CHUNK_MIN, blob_id, seal_blob
from strongroom.repository.writer import new_chunker
from strongroom.sources.files.forking import SharedFlag, child_setup
from strongroom.sources.files.meta import read_xattrs
from strongroom.sources.files.sparse import find_holes

READ_MORE = 1 << 20  # read size once a file turns out longer than its lstat said

# (holes, xattrs, chunks, size, sha256 hex) of a file read
FileData = tuple[list[list[int]], dict[str, str], list[tuple[bytes, bytes | None, int]], int,
                 str]

_child: dict[str, Any] = {}


def child_init(parent: int, repo: Any, stop: SharedFlag) -> None:
    """Initializer of a backup worker process (forked: ``repo`` is the parent's, opened)."""
    child_setup(parent)
    repo.after_fork()
    _child.update(repo=repo, stop=stop, cdc=new_chunker(repo.chunker_seed))


def ready() -> int:
    """A no-op task: submitted once, it makes the pool fork its workers at a known point."""
    return os.getpid()


def read_files(batch: list[tuple[str, int, bool]]
               ) -> list[tuple[list[str], FileData | None]]:
    """Per ``(path, size from lstat, maybe sparse)``: the errors met (``path: what``) and the
    file's data, None when it could not be read."""
    stop: SharedFlag = _child["stop"]
    out: list[tuple[list[str], FileData | None]] = []
    for path, size, sparse in batch:
        if stop.is_set():
            raise StrongroomError("backup stopped")
        errors: list[str] = []
        try:
            data = _read_one(path, size, sparse, errors)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            data = None
        out.append((errors, data))
    return out


def _read_one(path: str, size: int, sparse: bool, errors: list[str]) -> FileData:
    repo = _child["repo"]
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        holes = find_holes(fd, size) if sparse else []
        try:
            xattrs = read_xattrs(fd)
        except OSError as exc:
            errors.append(f"{path}: extended attributes: {exc.strerror or exc}")
            xattrs = {}
        # one read for the whole file (asking one byte more than lstat said), one at the end
        data = os.read(fd, size + 1)
        if data:
            parts = [data]
            while more := os.read(fd, READ_MORE):
                parts.append(more)
            if len(parts) > 1:
                data = b"".join(parts)
    finally:
        os.close(fd)
    index = repo.index
    id_key = repo.id_key
    chunks: list[tuple[bytes, bytes | None, int]] = []
    if len(data) < CHUNK_MIN:
        pieces: Any = [data] if data else []
    else:
        pieces = (chunk.data for chunk in _child["cdc"].cut_buf(data))
    for piece in pieces:
        bid = blob_id(id_key, piece)
        sealed = None if bid in index else seal_blob(repo.aead, BLOB_DATA, bid, piece)
        chunks.append((bid, sealed, len(piece)))
    return holes, xattrs, chunks, len(data), hashlib.sha256(data).hexdigest()
