"""Backup tasks: dump a source, read the snapshot back, confirm its new blobs are sealed."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from blocks.loading import load_source
from strongroom.audit import audited
from strongroom.errors import IntegrityError, StrongroomError
from tasks import _inspect
from tasks.progress import Progress, artifact_key
from tasks.repos import repository
from tasks.retry import RETRYING


def snapshot_report(snap: Any) -> dict[str, Any]:
    """The small, secret-free facts about a snapshot that tasks pass around."""
    return {"id": snap.id, "short_id": snap.short_id, "time": snap.time.isoformat(),
            "source": snap.source_name, "source_kind": snap.source_kind, "kind": snap.kind,
            "parent": snap.parent, "tags": list(snap.tags), "checksum": snap.checksum,
            "stats": snap.stats.model_dump()}


@task(name="dump", task_run_name="dump-{source}", cache_policy=NO_CACHE, **RETRYING)
def dump(source: str, target: str, kind: str, tags: list[str]) -> dict[str, Any]:
    """Back up ``source`` into a new ``kind`` snapshot of the ``target`` repository."""
    started = time.monotonic()
    src = load_source(source)
    with repository(target, create=True) as repo, \
            audited(repo, "backup", source=source, kind=kind, tags=tags):
        snap = src.backup(repo, kind, tags)
    report = snapshot_report(snap) | {"duration_s": round(time.monotonic() - started, 3)}
    get_run_logger().info("snapshot %s of %s: %s files, %s bytes new", snap.short_id,
                          snap.source_name, snap.stats.files, snap.stats.bytes_new)
    return report


def _parent_files(repo: Any, snap: Any) -> dict[str, tuple[tuple[str, ...], str]]:
    """path -> (blob ids, sha256) of the parent's files; empty without a readable parent."""
    if not snap.parent:
        return {}
    try:
        parent = repo.find_snapshot(snap.parent)
    except StrongroomError:  # parent forgotten: read everything
        return {}
    return {path: (tuple(node.content), node.sha256)
            for path, node in repo.reader(parent).walk() if node.type == "file"}


@task(name="checksum", cache_policy=NO_CACHE, **RETRYING)
def checksum(target: str, snapshot_id: str, read_all: bool = False) -> dict[str, Any]:
    """Read back every file whose blobs are new in this snapshot (``read_all``: every file),
    compare SHA-256s, then the snapshot's logical checksum over all files."""
    started = time.monotonic()
    with repository(target) as repo:
        snap = repo.find_snapshot(snapshot_id)
        reader = repo.reader(snap)
        entries = list(reader.walk())
        known = {} if read_all else _parent_files(repo, snap)
        total = sum(node.size for path, node in entries if node.type == "file"
                    and known.get(path) != (tuple(node.content), node.sha256))
        progress = Progress(artifact_key("checksum", snap.source_name), total,
                            f"Reading back snapshot {snap.short_id}")
        rows, read, files_read = [], 0, 0
        for path, node in entries:
            sha = ""
            if node.type == "file" and known.get(path) == (tuple(node.content), node.sha256):
                sha = node.sha256  # same blobs as the parent's, read back when it was made
            elif node.type == "file":
                digest = hashlib.sha256()
                with reader.open(path) as fh:
                    while block := fh.read(1 << 20):
                        digest.update(block)
                        read += len(block)
                        progress.advance(len(block))
                sha = digest.hexdigest()
                files_read += 1
                if node.sha256 and sha != node.sha256:
                    raise IntegrityError(f"snapshot {snap.short_id}: {path} reads back with a "
                                         "different SHA-256")
            rows.append((path, node, sha))
        progress.finish()
        if snap.checksum and _inspect.logical_checksum(rows) != snap.checksum:
            raise IntegrityError(f"snapshot {snap.short_id}: contents do not match its checksum")
    return {"snapshot": snap.id, "files": sum(1 for _, n, _ in rows if n.type == "file"),
            "files_read": files_read, "bytes_read": read, "checksum": snap.checksum,
            "duration_s": round(time.monotonic() - started, 3)}


@task(name="encrypt-check", cache_policy=NO_CACHE, **RETRYING)
def encrypt_check(target: str, snapshot_id: str) -> dict[str, Any]:
    """Every blob the snapshot added opens under the repository's current key (AES-256-GCM)."""
    started = time.monotonic()
    with repository(target) as repo:
        if repo.config.get("aead") != "aes-256-gcm":
            raise IntegrityError(f"repository {repo.url} is not sealed with AES-256-GCM")
        snap = repo.find_snapshot(snapshot_id)
        parent = None
        if snap.parent:
            try:
                parent = repo.find_snapshot(snap.parent)
            except StrongroomError:  # parent forgotten: then every blob counts as new
                parent = None
        trees, data = _inspect.blob_ids(repo, snap)
        old_trees, old_data = _inspect.blob_ids(repo, parent)
        new = sorted((trees | data) - (old_trees | old_data))
        sealed = sum(_inspect.read_blob(repo, bid) for bid in new)
    return {"snapshot": snap.id, "new_blobs": len(new), "sealed_bytes": sealed,
            "key_slot": repo.slot_id[:8], "duration_s": round(time.monotonic() - started, 3)}
