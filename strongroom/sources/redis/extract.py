"""Write a snapshot's RDB back to a file, every blob and the whole file verified."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom.errors import IntegrityError
from strongroom.sources.redis.rdb import RDB_PATH, RdbInfo, validate_file

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot


def extract_rdb(repo: Repository, snap: Snapshot, dest: Path,
                progress: Callable[[int], None] | None = None) -> RdbInfo:
    """Write the snapshot's RDB to ``dest`` (every blob verified), then validate the file."""
    reader = repo.reader(snap)
    node = reader.node(RDB_PATH)
    with open(dest, "wb") as out:
        for chunk in reader.chunks(node, RDB_PATH):
            out.write(chunk)
            if progress:
                progress(len(chunk))
    info = validate_file(dest, f"snapshot {snap.short_id}: {RDB_PATH}")
    if info.sha256 != node.sha256:
        raise IntegrityError(f"snapshot {snap.short_id}: {RDB_PATH} does not match its SHA-256")
    return info
